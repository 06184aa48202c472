"""The Flower app in one process (InProcessGrid): parity with the in-process engine, what a node
uploads, and a run that loses and regains a node. Real SuperLink/SuperNodes: test_flower_engines.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

from mmfedrec.config import RunConfig
from mmfedrec.config.methods import method_spec
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.engines.runner import build_trainer, train_seed
from mmfedrec.federation.flower.client_app import PRIVATE_KEY
from mmfedrec.federation.flower.launcher import in_process_grid, run_inprocess
from mmfedrec.federation.flower.run_config import flower_split, to_run_config
from mmfedrec.federation.flower.server_app import build_server_state
from tests.federation.helpers import small_flower_config

ALLOWED_ARRAYS = ("weighted.", "weights.", "row_sum", "row_senders", "row_positives", "clients")  # "clients": a count
ALLOWED_TRAIN_METRICS = {"num-examples", "num-clients", "upload-bytes", "routed-mass", "partition-id"}


def small_config(tmp_path, **changes) -> RunConfig:
    return small_flower_config(
        tmp_path, **({"max_cells": 256} | changes)
    )  # several chunks per node: chunking must not matter either


def inprocess_after_two_rounds(config: RunConfig):
    """The split, and the in-process engine after rounds 1 and 2 of `config`."""
    split = flower_split(config)
    torch.manual_seed(config.seeds[0])
    reference = build_trainer(method_spec(config.method), split, None, config, config.seeds[0])
    for round_index in (1, 2):
        reference.run_round(round_index)
    return split, reference


def assert_same_server_model(server, shared: dict, item_table: torch.Tensor) -> None:
    """The Flower server's shared tensors and item table equal `shared` and `item_table`."""
    for name, tensor in shared.items():
        torch.testing.assert_close(server.shared[name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(server.item_table(), item_table, atol=1e-5, rtol=1e-4)


# pfedrec steps its private MLP by SGD: under Adam, float-order noise in near-zero gradients of
# clients batched in other chunks becomes a step (measured: one weight of 61k off by 2e-5).
@pytest.mark.parametrize(
    ("method", "fraction", "history", "schedule", "optimizer"),
    [
        ("ours-id-only", 1.0, 0, "constant", "adam"),
        ("ours-id-only", 0.5, 3, "cosine", "adam"),
        ("fedavg-mf", 1.0, 0, "constant", "adam"),
        ("pfedrec", 1.0, 0, "constant", "sgd"),
    ],
)
def test_flower_rounds_match_the_inprocess_engine(
    tmp_path, method: str, fraction: float, history: int, schedule: str, optimizer: str
) -> None:
    config = small_config(
        tmp_path,
        method=method,
        client_fraction=fraction,
        history=history,
        lr_schedule=schedule,
        local_optimizer=optimizer,
    )
    split, reference = inprocess_after_two_rounds(config)
    state = build_server_state(config)
    outcome, grid = run_inprocess(config, num_partitions=2, state=state)
    assert_same_server_model(state.server, reference.shared, reference.server.item_table())
    # each node's private rows equal the engine's rows for its users (they stayed on the node)
    silos = np.array_split(np.arange(split.n_users), 2)
    for users, context in zip(silos, grid.contexts.values(), strict=True):
        private = context.state[PRIVATE_KEY].to_torch_state_dict()
        for name, rows in private.items():
            torch.testing.assert_close(rows, reference.private[name][users], atol=1e-5, rtol=1e-4, msg=name)
    valid = evaluate(reference.scorer(), split, "valid")
    for protocol in ("sampled", "full"):
        for metric, value in valid[protocol].items():
            assert outcome.curve[-1]["valid"][protocol][metric] == pytest.approx(value, abs=1e-9), metric
    assert outcome.curve[-1]["clients"] == round(fraction * split.n_users)


@pytest.mark.parametrize(
    "defence",
    [
        {"dp_epsilon": 8.0, "dp_clip": 0.5},
        {"aggregator": "median"},
        {"aggregator": "trimmed-mean", "norm_bound": 0.5},
        {"secure_agg": True, "client_fraction": 0.5},
        {"secure_agg": True, "dp_epsilon": 8.0, "dp_clip": 0.5},
        {"compress_bits": 8},
    ],
    ids=["dp", "median", "trimmed-mean+norm-bound", "secure-agg", "secure-agg+dp", "compression"],
)
def test_defences_on_flower_match_the_inprocess_engine(tmp_path, defence: dict) -> None:
    """DP (clipping, the accountant's noise drawn by the server), robust aggregation, secure
    aggregation (SecAgg+: the server learns the silos' total only) and compression with error
    feedback (residuals kept in each node's state) give the in-process engine's model.

    (Compression is checked with 8-bit values: a top-k cut flips on 1e-9 differences between the
    engines' batching, then the models differ by the flipped entries.)"""
    config = small_config(tmp_path, method="ours-id-only", **defence)
    _, reference = inprocess_after_two_rounds(config)
    state = build_server_state(config)
    _, grid = run_inprocess(config, num_partitions=2, state=state)
    assert_same_server_model(state.server, reference.shared, reference.server.item_table())
    kinds = {name for reply in grid.replies for name in ("sums", "uploads") if name in reply.content}
    expected = set() if defence.get("secure_agg") else {"sums"} if "compress_bits" in defence else {"uploads"}
    assert kinds == expected
    if defence.get("secure_agg"):  # SecAgg+: what a silo sends is the protocol's: keys, shares, a masked vector
        stages = [reply for reply in grid.replies if "secaggplus_configs" in reply.content]
        assert len(stages) == 2 * 2 * 4  # 2 silos, 2 rounds, 4 stages
        for reply in stages:
            assert all(len(record) == 0 for record in reply.content.array_records.values())


@pytest.mark.parametrize(  # "clients": silos send their client counts
    ("row_average", "select_on", "history", "schedule", "cold_items"),
    [
        ("senders", "ndcg@10", 0, "constant", 0.0),
        ("clients", "hr@10", 3, "cosine", 0.0),
        ("senders", "ndcg@10", 0, "constant", 0.2),
    ],
)
def test_flower_outcome_matches_train_seed(
    tmp_path, row_average: str, select_on: str, history: int, schedule: str, cold_items: float
) -> None:
    """Model selection and the best-round test run the same way: one summary, either engine (and
    under the cold-start protocol, a content model whose tower learns its evidence from the silos)."""
    config = small_config(
        tmp_path,
        rounds=3,
        row_average=row_average,
        select_on=select_on,
        history=history,
        lr_schedule=schedule,
        cold_items=cold_items,
        **({"method": "ours-no-image"} if cold_items else {}),
    )
    features = None
    if cold_items:
        from mmfedrec.data.registry import load_dataset
        from mmfedrec.encoders.features import features_for_run

        features = features_for_run(config, load_dataset(config.data).catalog)
    reference = train_seed(method_spec(config.method), flower_split(config), features, config, config.seeds[0])
    outcome, _ = run_inprocess(config, num_partitions=3)
    assert outcome.best_round == reference.best_round
    assert outcome.test["users"] == reference.test["users"]
    for protocol in ("sampled", "full"):
        for metric, value in reference.test[protocol].items():
            assert outcome.test[protocol][metric] == pytest.approx(value, abs=1e-9), metric
    for bucket, block in reference.test["buckets"].items():
        assert outcome.test["buckets"][bucket]["users"] == block["users"]
        assert outcome.test["buckets"][bucket]["sampled"]["ndcg@10"] == pytest.approx(
            block["sampled"]["ndcg@10"], abs=1e-9, nan_ok=True
        )
    assert outcome.upload_bytes_per_client_round == pytest.approx(reference.upload_bytes_per_client_round)
    assert outcome.download_bytes_per_client_round == pytest.approx(reference.download_bytes_per_client_round)
    assert set(outcome.best_state) == {k for k in reference.best_state if not k.startswith("private.")}
    if cold_items:  # the silos' positives reached the server's tower: the same evidence, cold items without
        assert outcome.test["buckets"]["cold"]["users"] > 0
        evidence = outcome.best_state["tower.evidence"]
        torch.testing.assert_close(evidence, reference.best_state["tower.evidence"])
        assert (evidence == 0).sum() >= round(0.2 * len(evidence))


def test_replies_carry_no_private_state(tmp_path) -> None:
    """Every message a node sent: update sums and counts only; no user rows, router.private.*, interactions."""
    # two rounds: after one Adam step every value is +-lr, so a 4-value private row (the router's
    # bias) would match some sign pattern of the item rows by chance
    config = small_config(tmp_path, rounds=2)
    outcome, grid = run_inprocess(config, num_partitions=2)
    assert grid.replies, "no reply captured"
    private_rows = [
        context.state[PRIVATE_KEY].to_torch_state_dict() for context in grid.contexts.values()
    ]  # what the nodes hold
    assert any("router.private.weight" in rows for rows in private_rows)
    for reply in grid.replies:
        assert not reply.has_error()
        content = reply.content
        kind = reply.metadata.message_type
        if kind == "train":
            assert set(content.keys()) == {"sums", "metrics"}
            arrays = content["sums"]
            assert isinstance(arrays, ArrayRecord)
            for name in arrays:
                assert name.startswith(ALLOWED_ARRAYS), name
                assert "user" not in name and "private" not in name, name
            assert set(content["metrics"]) <= ALLOWED_TRAIN_METRICS
            sent = [t.reshape(-1) for t in arrays.to_torch_state_dict().values()]
            for rows in private_rows:  # no private row (nor its negation) appears inside any array
                for tensor in rows.values():
                    for row in tensor.reshape(tensor.shape[0], -1)[:, :8]:
                        if row.abs().sum() == 0:
                            continue
                        for flat in sent:
                            windows = flat.unfold(0, len(row), 1) if len(flat) >= len(row) else flat[:0].view(0, 1)
                            assert not torch.isclose(windows, row).all(-1).any()
        else:
            assert set(content.keys()) == {"metrics"}
            metrics = content["metrics"]
            assert isinstance(metrics, MetricRecord)
            # sums per bucket only: no per-user value, no item list
            assert all(isinstance(v, int | float) for v in metrics.values())
        assert not any(isinstance(record, ConfigRecord) for record in content.values())
    assert outcome.test["users"] > 0


def test_secagg_plus_survives_a_silo_that_dies_after_sharing_its_keys(tmp_path) -> None:
    """Round 2: the third silo dies after SecAgg+'s key sharing, before sending its masked vector.
    The survivors' shares reconstruct what cancels its masks; the server gets the FedAvg of the
    two surviving silos, as if their uploads had been sent in the clear (a norm bound no upload
    reaches sends them so, and that run loses the same silo)."""
    models = {}
    for secure in (False, True):
        defence = {"secure_agg": True} if secure else {"norm_bound": 1e6}
        config = small_config(tmp_path / str(secure), rounds=2, method="ours-id-only", **defence)
        grid = in_process_grid(config, num_partitions=3)
        third = list(grid.contexts)[2]

        def die_in_round_two(message, grid=grid, third=third, secure=secure) -> None:
            content = message.content
            if secure and "secaggplus_configs" in content:
                stage = content["secaggplus_configs"].get("stage")
                if stage == "collect_masked_vectors" and message.metadata.group_id == "2":
                    grid.down.add(third)
            elif not secure and message.metadata.message_type == "train" and content["config"]["server-round"] == 2:
                grid.down.add(third)

        grid.on_round = die_in_round_two
        state = build_server_state(config)
        outcome, _ = run_inprocess(config, grid=grid, state=state)
        assert outcome.curve[1]["lost_silos"] == [2]
        models[secure] = state.server
    assert_same_server_model(models[True], models[False].shared, models[False].item_table())


def test_a_dead_node_does_not_stop_the_run_and_a_rejoining_node_continues(tmp_path) -> None:
    config = small_config(tmp_path, rounds=3)
    grid = in_process_grid(config, num_partitions=2)
    first, second = list(grid.contexts)
    events: list[str] = []

    def on_message(message) -> None:
        round_config = message.content["config"]
        server_round = int(round_config["server-round"])
        if message.metadata.message_type == "train" and server_round == 2 and not events:
            grid.down.add(second)  # dies while round 2 is under way: its reply is an error
            events.append("died")
        if message.metadata.message_type == "evaluate" and server_round == 2 and events == ["died"]:
            events.append("rejoined")
            grid.add_node({"partition-id": 1, "num-partitions": 2})  # a fresh process, same silo

    grid.on_round = on_message
    outcome, _ = run_inprocess(config, grid=grid)
    assert events == ["died", "rejoined"]
    rounds = {entry["round"]: entry for entry in outcome.curve}
    assert rounds[1]["nodes"] == 2 and rounds[1]["failed_nodes"] == 0
    assert rounds[2]["failed_nodes"] == 1 and rounds[2]["nodes"] == 1 and rounds[2]["lost_silos"] == [1]
    assert rounds[2]["clients"] == 30  # the first silo only
    assert rounds[3]["nodes"] == 2 and rounds[3]["clients"] == 60
    assert outcome.test["users"] == 60  # the rejoined node answers the test for its silo
    assert first in grid.contexts


def test_denoiser_action_replies_the_fedavg_sums_of_its_silo(tmp_path) -> None:
    """@app.train("denoiser"): sums whose ratio is FedAvg of the silo's client updates; no profile leaves."""
    from flwr.app import Context, RecordDict

    from mmfedrec.federation.flower.client_app import app, denoiser_generator, load_silo
    from mmfedrec.generators.denoiser import ProfileDenoiser
    from mmfedrec.generators.federated import FederatedDenoiserConfig, fedavg_mean_update
    from mmfedrec.generators.objective import completion_batch
    from mmfedrec.generators.profiles import ProfileSpace, training_histories
    from mmfedrec.generators.scheduling import training_scheduler

    config = small_config(tmp_path)
    silo = load_silo(config, 1, 2)
    denoiser = ProfileDenoiser(profile_dim=silo.split.n_items, hidden_dim=16, time_embed_dim=8)
    round_config = {
        "server-round": 3,
        "hidden-dim": 16,
        "time-embed-dim": 8,
        "num-train-timesteps": 50,
        "views-per-client": 2,
        "keep-low": 0.2,
        "keep-high": 0.8,
        "local-steps": 2,
        "local-lr": 0.1,
        "chunk-size": 7,
    }
    content = RecordDict({"arrays": ArrayRecord(denoiser.state_dict()), "config": ConfigRecord(round_config)})
    message = grid_message(content, "train.denoiser")
    context = Context(
        1, 7, {"partition-id": 1, "num-partitions": 2}, RecordDict(), to_run_config(config, config.seeds[0])
    )
    reply = app(message, context)
    assert set(reply.content.keys()) == {"sums", "metrics"}
    sums = reply.content["sums"].to_torch_state_dict()
    assert set(sums) == {name for name, _ in denoiser.named_parameters()}
    weight = reply.content["metrics"]["weight"]

    histories = training_histories(silo.split, silo.users)
    histories = histories[histories.sum(1) > 0]
    batch = completion_batch(
        histories, ProfileSpace(silo.split.n_items), training_scheduler(50), 2, (0.2, 0.8), denoiser_generator(0, 3, 1)
    )
    reference = FederatedDenoiserConfig(local_steps=2, local_lr=0.1, chunk_size=5)
    mean, loss = fedavg_mean_update(denoiser, batch, histories.sum(1), reference)
    assert weight == pytest.approx(float(histories.sum()))
    for name, value in mean.items():
        torch.testing.assert_close(sums[name] / weight, value, atol=1e-6, rtol=1e-4)
    assert reply.content["metrics"]["loss-sum"] / weight == pytest.approx(loss, rel=1e-5)


def grid_message(content, message_type: str):
    """A message as the SuperLink would deliver it to a node."""
    from flwr.app import Message

    from mmfedrec.federation.flower.launcher import in_process_grid

    in_process_grid(RunConfig(), 1)  # sets the process's task identity for Message()
    return Message(content, 7, message_type)


def test_flower_engines_write_the_run_folder_of_the_inprocess_engine(tmp_path, monkeypatch) -> None:
    """--engine flower-* goes through the same orchestrator: summary.json has the in-process keys and values."""
    from mmfedrec.config.codec import with_settings
    from mmfedrec.experiment import run_experiment
    from mmfedrec.federation.flower import launcher

    # the engine's processes are tested in test_flower_engines.py; here the same app runs in-process
    monkeypatch.setattr(launcher, "run_flower", lambda config, engine, options=None, **_: run_inprocess(config, 2)[0])
    config = with_settings(
        RunConfig(),
        method="fedavg-mf",
        synthetic_users=60,
        synthetic_items=50,
        cache_dir=tmp_path / "cache",
        seeds=(0, 1),
        eval_negatives=20,
        rounds=2,
        dim=16,
        batch_size=16,
        steps_probe=0,  # Flower decides the client steps by the count; the in-process twin likewise
    )
    flower = run_experiment(dataclasses.replace(config, engine="flower-deploy"), tmp_path / "flower", progress=False)
    reference = run_experiment(config, tmp_path / "inprocess", progress=False)
    assert set(flower) == set(reference)
    assert flower["test"]["sampled"]["ndcg@10"] == pytest.approx(reference["test"]["sampled"]["ndcg@10"], abs=1e-9)
    assert flower["best_round"] == reference["best_round"]
    assert flower["engine"] == "flower-deploy"
    written = {p.name for p in (tmp_path / "flower").iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "report.md", "model.safetensors", "seed-1.json"} <= written


def test_resuming_a_flower_run_keeps_its_engine(tmp_path, monkeypatch) -> None:
    """`mmfedrec train --resume` on a Flower run folder goes on with Flower, not in-process."""
    from mmfedrec.cli import main
    from mmfedrec.federation.flower import launcher

    engines: list[str] = []

    def fake_flower(config, engine, options=None, **_):
        engines.append(engine)
        return run_inprocess(config, 2)[0]

    monkeypatch.setattr(launcher, "run_flower", fake_flower)
    out = tmp_path / "run"
    common = ["--method", "fedavg-mf", "--synthetic-users", "60", "--synthetic-items", "50", "--eval-negatives", "20"]
    args = [*common, "--cache-dir", str(tmp_path / "cache"), "--rounds", "2", "--dim", "16", "--seeds", "0,1"]
    assert main(["train", *args, "--engine", "flower-sim", "--out", str(out), "--quiet"]) == 0
    (out / "seed-1.json").unlink()  # as if the run had been killed during seed 1
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert engines == ["flower-sim", "flower-sim", "flower-sim"]


def test_denoiser_rounds_over_silos_lower_the_loss(tmp_path) -> None:
    from mmfedrec.federation.flower.server_app import train_denoiser_rounds
    from mmfedrec.generators.denoiser import ProfileDenoiser

    config = small_config(tmp_path)
    grid = in_process_grid(config, num_partitions=2)
    torch.manual_seed(0)
    denoiser = ProfileDenoiser(profile_dim=flower_split(config).n_items, hidden_dim=32, time_embed_dim=16)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=3e-3)
    round_config = {
        "hidden-dim": 32,
        "time-embed-dim": 16,
        "num-train-timesteps": 50,
        "views-per-client": 2,
        "keep-low": 0.2,
        "keep-high": 0.8,
        "local-steps": 1,
        "local-lr": 0.1,
    }
    losses = train_denoiser_rounds(grid, denoiser, optimizer, round_config, rounds=30)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert all(set(reply.content.keys()) == {"sums", "metrics"} for reply in grid.replies)


def test_pyproject_run_config_declares_every_key_with_its_default() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = pyproject["tool"]["flwr"]["app"]["config"]
    from flwr.common.config import flatten_dict

    from mmfedrec.config.codec import flatten, from_flat

    expected = flatten(RunConfig())
    lines = "\n".join(f"{key} = {value!r}" for key, value in expected.items())
    assert flatten_dict(declared) == expected, f"regenerate [tool.flwr.app.config] from:\n{lines}"
    assert from_flat(flatten_dict(declared)) == RunConfig()


def test_the_flower_server_holds_no_private_state(tmp_path) -> None:
    """The ServerApp keeps shared tensors and the item tower; user rows live only on the SuperNodes."""
    config = small_config(tmp_path, method="ours-id-only", history=3)
    state = build_server_state(config)
    n_users = flower_split(config).n_users  # 60 users, 50 items: a per-user tensor would show
    held = {**state.server.shared, **state.server.tower.state_dict()}
    assert held and not any(tensor.dim() and tensor.shape[0] == n_users for tensor in held.values())
    assert not hasattr(state, "private")
