"""Flower ServerApp: FedAvg's round loop driving mmfedrec's `ServerModel` (FedAvg, McMahan et al., 2017).

The strategy overrides only what it must: `aggregate_train` adds the silos' `UpdateSums` and
calls `ServerModel.apply` (the same maths as the in-process engine), `aggregate_evaluate` turns
the silos' metric sums into the evaluator's means and tracks the best validation round. Node
replies that are errors (a node died, a ClientApp raised) are logged by FedAvg and left out:
the round completes with the remaining silos. After the last round the best round's global
model is tested on every node, so the outcome has the in-process runner's shape (`SeedOutcome`).
"""

from __future__ import annotations

import functools
import json
import operator
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import RunConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.evaluation.protocols import BUCKETS
from mmfedrec.evaluation.selection import BestRound
from mmfedrec.federation.aggregation.defended import (
    ClientUploads,
    Defense,
    aggregate_defended,
    expected_clients,
    fedavg_from_sums,
    reject_non_finite,
    secure_layout,
    unmasked_sums,
)
from mmfedrec.federation.aggregation.server import ClientSampler, ServerModel
from mmfedrec.federation.aggregation.sums import UpdateSums
from mmfedrec.federation.engines.runner import SeedOutcome, build_client_model, build_tower, noise_multiplier
from mmfedrec.federation.flower.client_app import PROTOCOLS, global_arrays
from mmfedrec.federation.flower.polling_grid import PollingGrid
from mmfedrec.federation.flower.run_config import check_flower_support, flower_split, from_run_config
from mmfedrec.federation.flower.secagg_plus import decode_total, secagg_plus_round
from mmfedrec.federation.local.batches import round_key
from mmfedrec.federation.privacy.comm import download_nbytes
from mmfedrec.runtime import configure_runtime


def metric_means(sums: dict[str, float]) -> dict[str, object]:
    """The evaluator's result (`evaluate(...)` shape) from metric sums added over silos."""

    def block(bucket: str) -> dict[str, object]:
        users = int(sums.get(f"{bucket}/users", 0))
        result: dict[str, object] = {}
        for protocol, ks, names in PROTOCOLS:
            result[protocol] = {
                f"{name}@{k}": sums[f"{bucket}/{protocol}/{name}@{k}"] / users if users else float("nan")
                for k in ks
                for name in names
            }
        result["users"] = users
        return result

    return {**block("all"), "buckets": {bucket: block(bucket) for bucket in BUCKETS}}


def add_metric_sums(replies: Iterable[Message]) -> dict[str, float]:
    total: dict[str, float] = {}
    for reply in replies:
        for key, value in reply.content["metrics"].items():
            if "/" in key:
                total[key] = total.get(key, 0.0) + float(value)
    return total


def sum_replies(replies: list[Message]) -> UpdateSums:
    """The plain FedAvg round: the silos' additive `UpdateSums`, added."""
    return functools.reduce(
        operator.add, (UpdateSums.from_tensors(reply.content["sums"].to_torch_state_dict()) for reply in replies)
    )


class MmfedrecStrategy(FedAvg):
    """FedAvg's sampling and messaging; mmfedrec's aggregation, server optimizer and item tower."""

    def __init__(self, state: ServerState, rounds: int, eval_every: int, select_on: str = "ndcg@10") -> None:
        super().__init__(min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
        self.state = state
        self.server = state.server
        self.sampler = state.sampler
        self._selected: np.ndarray | None = None  # this round's sampled users (None: all)
        self._secure_metrics: list[dict] = []  # under SecAgg+: the round's silos' metrics
        self._secure_failures = 0
        self.timeout: float | None = None  # seconds a message may take (run_server sets the run's)
        self.rounds = rounds
        self.eval_every = eval_every
        self.curve: list[dict[str, object]] = []
        self.best = BestRound(select_on)
        self.best_state = self.server_state()
        self.best_arrays = self.global_arrays()
        self._round_started = self._eval_started = 0.0
        self._download = 0.0
        self.silos: set[int] = set()  # partition ids of every silo that ever replied

    def global_arrays(self) -> ArrayRecord:
        return global_arrays(self.server.shared, self.server.item_table())

    def server_state(self) -> dict[str, torch.Tensor]:
        """Shared tensors and item tower: the server's half of `Simulation.state()` (no private rows)."""
        snapshot = {f"shared.{k}": v.clone() for k, v in self.server.shared.items()}
        snapshot.update({f"tower.{k}": v.detach().clone() for k, v in self.server.tower.state_dict().items()})
        return snapshot

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_started = time.perf_counter()
        self._download = float(download_nbytes(self.server.shared, self.server.item_table()))
        config["best-round"] = self.best.round
        selected = self.sampler.select()
        self._selected = None
        if len(selected) < self.sampler.n_users:
            self._selected = selected
            config["selected"] = [int(u) for u in selected]
        if self.state.defense.privacy.secure_agg:  # the round runs as SecAgg+'s protocol, here
            self._secure_round(grid, server_round)
            return []
        return super().configure_train(server_round, arrays, config, grid)

    def _secure_round(self, grid: Grid, server_round: int) -> None:
        """One SecAgg+ round (`secagg_plus.secagg_plus_round`): the server learns the silos' total only."""
        round_config: dict[str, int | bytes] = {"server-round": server_round, "best-round": self.best.round}
        if self._selected is not None:
            round_config["selected"] = self._selected.astype(np.int64).tobytes()
        item_table = self.server.item_table()
        arrays = {f"shared.{name}": value.numpy() for name, value in self.server.shared.items()}
        arrays["item_table"] = item_table.numpy()
        nodes = len(list(grid.get_node_ids()))
        total, self._secure_metrics = secagg_plus_round(grid, server_round, arrays, round_config, self.timeout)
        self._secure_failures = nodes - len(self._secure_metrics)
        if total is None:
            log(WARNING, "round %d: SecAgg+ halted (too few silos completed it); the model is unchanged", server_round)
            return
        n_items, width = item_table.shape
        dense_shapes = {name: tuple(value.shape) for name, value in self.server.shared.items()}
        layout = secure_layout(dense_shapes, n_items, width)
        clients = sum(int(metrics["num-clients"]) for metrics in self._secure_metrics)
        sums = unmasked_sums(torch.from_numpy(total[:-n_items]), layout, clients)
        positives = torch.from_numpy(decode_total(total[-n_items:])).float()
        state = self.state
        delta, rows = fedavg_from_sums(sums, state.defense, state.expected_clients, state.noise, state.row_average)
        self.server.apply_delta(delta, rows, None, positives)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        rejected = 0
        if self.state.defense.privacy.secure_agg:  # aggregated by `_secure_round` already
            replied, failed = self._secure_metrics, self._secure_failures
        else:
            valid, errors = self._check_and_log_replies(replies, is_train=True, validate=False)
            trained = [r for r in valid if int(r.content["metrics"]["num-clients"]) > 0]
            if any("sums" in r.content for r in trained):
                self.server.apply(sum_replies(trained))
            elif any("uploads" in r.content for r in trained):
                rejected = self.aggregate_uploads(server_round, trained)
            replied, failed = [dict(r.content["metrics"]) for r in valid], len(errors)
        trained_metrics = [m for m in replied if int(m["num-clients"]) > 0]
        clients = sum(int(m["num-clients"]) for m in trained_metrics)
        examples = sum(int(m["num-examples"]) for m in trained_metrics)
        upload = sum(float(m["upload-bytes"]) for m in trained_metrics)
        answered = {int(m["partition-id"]) for m in replied}
        self.silos |= answered
        lost = sorted(self.silos - answered)
        if failed or lost:
            log(
                WARNING,
                "round %d: %d node(s) failed, silo(s) %s did not reply; aggregated %d node(s)",
                server_round,
                failed,
                lost,
                len(replied),
            )
        self.curve.append(
            {
                "round": server_round,
                "seconds": round(time.perf_counter() - self._round_started, 4),
                "clients": clients,
                "upload_bytes_per_client": upload / clients if clients else 0.0,
                "download_bytes_per_client": self._download,
                "nodes": len(replied),
                "failed_nodes": failed,
                "lost_silos": lost,
                "rejected": rejected,
            }
        )
        metrics: dict[str, int | float | list[float]] = {"num-examples": examples, "num-clients": clients}
        masses = [m["routed-mass"] for m in trained_metrics if "routed-mass" in m]
        if masses:
            metrics["routed-mass"] = [float(v) for v in np.sum(np.asarray(masses, dtype=np.float64), axis=0)]
        return self.global_arrays(), MetricRecord(metrics)

    def aggregate_uploads(self, server_round: int, trained: list[Message]) -> int:
        """The defended aggregation of the silos' per-client uploads, as in-process; returns how many
        uploads were rejected (non-finite)."""
        state, n_items = self.state, self.server.item_table().shape[0]
        received = [r.content["uploads"].to_torch_state_dict() for r in trained]
        positives = torch.stack([tensors.pop("positives") for tensors in received]).sum(0)
        uploads, rejected = reject_non_finite(
            ClientUploads.concat(list(map(ClientUploads.from_tensors, received))), server_round
        )
        if len(uploads.clients):
            key = round_key(state.seed, server_round)
            delta, rows = aggregate_defended(
                uploads, state.defense, n_items, state.expected_clients, state.noise, key, state.row_average
            )
            self.server.apply_delta(delta, rows, None, positives)
        return rejected

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if server_round % self.eval_every != 0 and server_round != self.rounds:
            return []
        self._eval_started = time.perf_counter()
        config["stage"] = "valid"
        config["best-round"] = self.best.round
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        valid, _ = self._check_and_log_replies(replies, is_train=False, validate=False)
        if not valid:
            return None
        result = metric_means(add_metric_sums(valid))
        entry = self.curve[-1]
        entry["valid"] = {"sampled": result["sampled"], "full": result["full"]}
        entry["eval_seconds"] = round(time.perf_counter() - self._eval_started, 4)
        if self.best.offer(server_round, result):
            self.best_state, self.best_arrays = self.server_state(), self.global_arrays()
        return MetricRecord({f"valid-{p}-{m}": float(v) for p in ("sampled", "full") for m, v in result[p].items()})

    def evaluate_best(self, grid: Grid, timeout: float) -> dict[str, object]:
        """Test the best validation round's model on every connected node."""
        config = ConfigRecord({"server-round": self.rounds, "stage": "test", "best-round": self.best.round})
        record = RecordDict({self.arrayrecord_key: self.best_arrays, self.configrecord_key: config})
        messages = self._construct_messages(record, list(grid.get_node_ids()), MessageType.EVALUATE)
        valid, _ = self._check_and_log_replies(grid.send_and_receive(messages, timeout=timeout), False, False)
        if not valid:
            raise MmfedrecError("no node answered the test evaluation")
        stale = sum(int(r.content["metrics"].get("stale-private", 0)) for r in valid)
        if stale:
            log(WARNING, "test: %d node(s) no longer held their best-round private state", stale)
        return metric_means(add_metric_sums(valid))


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise MmfedrecError(f"only {len(list(grid.get_node_ids()))} of {count} SuperNodes connected in {timeout} s")
        time.sleep(0.5)


@dataclass
class ServerState:
    """What the Flower server holds: the shared tensors and item tower (with their optimizers), the
    client sampler and the defences. Never a user's private state: that stays in each SuperNode."""

    server: ServerModel
    sampler: ClientSampler
    defense: Defense
    seed: int
    expected_clients: float  # DP's fixed denominator: clients sampled per round
    row_average: str
    noise: torch.Generator = field(default_factory=torch.Generator)  # DP noise, drawn as in-process


def build_server_state(config: RunConfig) -> ServerState:
    """The server's half of the run, drawn as every engine draws it for the seed."""
    method = method_spec(config.method)
    split = flower_split(config)
    features = None
    if method.modalities:
        from mmfedrec.data.registry import load_dataset
        from mmfedrec.encoders.features import features_for_run

        features = features_for_run(config, load_dataset(config.data).catalog)
    seed = config.seeds[0]
    torch.manual_seed(seed)  # as train_seed does
    model = build_client_model(method, config, split)
    shared = model.init_shared(torch.Generator().manual_seed(seed))  # `initial_state` draws the shared tensors first
    tower = build_tower(method, split, features, config, seed)
    server = ServerModel.for_run(shared, tower, config.federated)
    federated = config.federated
    return ServerState(
        server,
        ClientSampler(split.n_users, federated.client_fraction, seed),
        Defense(config.robust, config.privacy, noise_multiplier(config)),
        seed,
        expected_clients(federated.client_fraction, split.n_users),
        federated.row_average,
        torch.Generator().manual_seed(seed + 1),
    )


def run_server(grid: Grid, config: RunConfig, state: ServerState | None = None) -> SeedOutcome:
    """All rounds, then the test at the best round: the Flower counterpart of `train_seed`.

    Args:
        state: the server's state (default: `build_server_state(config)`); left at the last round.
    """
    check_flower_support(config)
    if config.flower.reply_poll > 0:
        grid = PollingGrid(grid, config.flower.reply_poll)
    state = state or build_server_state(config)
    rounds, flower, seed = config.train.rounds, config.flower, config.seeds[0]
    strategy = MmfedrecStrategy(state, rounds, config.eval.eval_every, config.eval.select_on)
    strategy.timeout = flower.round_timeout
    wait_for_nodes(grid, flower.min_nodes, flower.node_wait_timeout)
    strategy.start(grid, strategy.global_arrays(), num_rounds=rounds, timeout=flower.round_timeout)
    test = strategy.evaluate_best(grid, flower.round_timeout)
    curve = [{"seed": seed, **entry} for entry in strategy.curve]
    n_rounds = max(1, len(curve))
    return SeedOutcome(
        seed=seed,
        best_round=strategy.best.round,
        valid=strategy.best.valid,
        test=test,
        curve=curve,
        sec_per_round=sum(e["seconds"] for e in curve) / n_rounds,
        upload_bytes_per_client_round=sum(e["upload_bytes_per_client"] for e in curve) / n_rounds,
        download_bytes_per_client_round=sum(e["download_bytes_per_client"] for e in curve) / n_rounds,
        best_state=strategy.best_state,
    )


def write_outcome(outcome: SeedOutcome, folder: Path) -> Path:
    """outcome-seed<s>.json (everything but the tensors) + best-seed<s>.safetensors, atomically."""
    from safetensors.torch import save

    from mmfedrec.atomic import write_atomic
    from mmfedrec.evaluation.report import write_json

    folder = Path(folder)
    state = {k: v.contiguous() for k, v in outcome.best_state.items()}
    write_atomic(folder / f"best-seed{outcome.seed}.safetensors", save(state))
    payload = {k: v for k, v in outcome.__dict__.items() if k != "best_state"}
    path = folder / f"outcome-seed{outcome.seed}.json"
    write_json(path, payload)
    return path


def read_outcome(folder: Path, seed: int) -> SeedOutcome:
    from safetensors.torch import load_file

    payload = json.loads((Path(folder) / f"outcome-seed{seed}.json").read_text())
    return SeedOutcome(**payload, best_state=load_file(str(Path(folder) / f"best-seed{seed}.safetensors")))


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = from_run_config(context.run_config)
    configure_runtime(config.flower.flower_threads)
    outcome = run_server(grid, config)
    log(INFO, "best round %d: test sampled ndcg@10 %.4f", outcome.best_round, outcome.test["sampled"]["ndcg@10"])
    if config.flower.outcome_dir:
        log(INFO, "wrote %s", write_outcome(outcome, Path(config.flower.outcome_dir)))


def train_denoiser_rounds(
    grid: Grid,
    denoiser: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    round_config: dict[str, int | float],
    rounds: int,
    timeout: float = 600.0,
) -> list[float]:
    """Federated denoiser training over the connected silos (`train.denoiser` messages).

    Each round sends the denoiser's weights, adds the silos' FedAvg sums, and steps `optimizer`
    on the negative mean update, as `mmfedrec.generators.federated.federated_round` does
    (without its DP noise). `round_config` carries the ClientApp action's keys (hidden-dim,
    time-embed-dim, num-train-timesteps, views-per-client, keep-low, keep-high, local-steps,
    local-lr, optional clip-norm, chunk-size). Returns each round's mean loss.
    """
    losses = []
    for server_round in range(1, rounds + 1):
        arrays = ArrayRecord({k: v.detach().contiguous() for k, v in denoiser.state_dict().items()})
        config = ConfigRecord({**round_config, "server-round": server_round})
        record = RecordDict({"arrays": arrays, "config": config})
        messages = [Message(record, node, f"{MessageType.TRAIN}.denoiser") for node in grid.get_node_ids()]
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        valid = [reply for reply in replies if not reply.has_error()]
        if len(valid) < len(replies):
            log(WARNING, "denoiser round %d: %d node(s) failed", server_round, len(replies) - len(valid))
        if not valid:
            raise MmfedrecError(f"denoiser round {server_round}: no silo replied")
        weight = sum(float(r.content["metrics"]["weight"]) for r in valid)
        sums = [r.content["sums"].to_torch_state_dict() for r in valid]
        optimizer.zero_grad()
        for name, param in denoiser.named_parameters():
            param.grad = -sum(s[name] for s in sums) / weight
        optimizer.step()
        losses.append(sum(float(r.content["metrics"]["loss-sum"]) for r in valid) / weight)
    return losses
