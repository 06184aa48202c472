"""New clients: training only their own state against a frozen model, joining a finished run,
and pseudo-interactions that stay on the client."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmfedrec.config import LocalConfig, RunConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.federation.engines.joining import Joining
from mmfedrec.federation.engines.runner import train_seed
from mmfedrec.federation.local.batches import NO_EVENT, build_round_examples, pad_chunks, round_key
from mmfedrec.federation.local.training import local_train
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.generators import hold_out_clients
from tests.federation.helpers import planted_split
from tests.federation.test_simulation import make_simulation


def test_a_round_without_server_update_trains_only_the_given_clients_own_state() -> None:
    simulation = make_simulation("batched", history=3)
    before = simulation.state()
    clients = np.array([1, 4, 7])
    stats = simulation.run_round(1, clients=clients, update_server=False)
    after = simulation.state()
    assert stats.clients == 3 and stats.upload_bytes_per_client == 0.0
    for name, value in before.items():
        if not name.startswith("private."):
            assert torch.equal(value, after[name]), name
    moved = (after["private.user"] - before["private.user"]).norm(dim=1) > 0
    np.testing.assert_array_equal(np.flatnonzero(moved.numpy()), clients)


def test_held_out_clients_join_the_chosen_model_and_leave_it_as_it_was() -> None:
    full = planted_split()
    split, joiners = hold_out_clients(full, 0.25, 5, seed=0)
    config = with_settings(RunConfig(), rounds=3, dim=16, history=3, batch_size=8)
    pseudo_calls = []

    def augment(joining_split):
        pseudo_calls.append(joining_split.train_counts()[joiners].max())
        return None

    joining = Joining(full, joiners, (1, 3), 4, augment)
    outcome = train_seed(method_spec("ours-id-only"), split, None, config, 0, joining=joining)
    plain = train_seed(method_spec("ours-id-only"), split, None, config, 0)
    assert pseudo_calls == [1, 3]
    for n in (1, 3):
        bucket = outcome.test["buckets"][f"new-{n}"]
        assert bucket["users"] == len(joiners) and 0 <= bucket["epochs"] <= 4
        assert 0.0 < bucket["sampled"]["ndcg@10"] <= 1.0
    assert outcome.test["sampled"] == plain.test["sampled"]  # joining changed nothing for the others
    for name, value in plain.best_state.items():
        assert torch.equal(value, outcome.best_state[name]), name


def test_pseudo_positives_kept_private_send_nothing_of_theirs() -> None:
    split = planted_split()
    generator = torch.Generator().manual_seed(0)
    model = build_model("moe", 16, n_experts=3)
    shared, private = model.init_shared(generator), model.init_private(split.n_users, generator)
    table = ItemTower(split.n_items, 16, generator=generator)().detach()
    indptr, items = split.train_csr()
    clients = np.arange(8)
    pseudo = (clients.repeat(2), (np.arange(16) * 5) % split.n_items, np.full(16, 0.5, np.float32))
    examples = build_round_examples(clients, indptr, items, split.n_items, 4, round_key(0, 1), pseudo)
    chunk = pad_chunks(examples, max_cells=4096)[0]
    is_pseudo = (chunk.weights > 0) & (chunk.events == NO_EVENT)
    without = replace(chunk, weights=chunk.weights * ~is_pseudo)  # the same chunk, pseudo examples weightless
    # one step: the same starting state
    config = LocalConfig(lr=0.05, batch_size=chunk.weights.shape[1]).resolved(dense=False)
    chunk_private = {k: v[chunk.clients] for k, v in private.items()}
    kept = local_train(model, shared, chunk_private, table, chunk, config, pseudo_shared=False)
    reference = local_train(model, shared, chunk_private, table, without, config)
    sent = local_train(model, shared, chunk_private, table, chunk, config)
    for name, delta in reference.shared_delta.items():
        torch.testing.assert_close(kept.shared_delta[name], delta, msg=name)
        assert not torch.allclose(sent.shared_delta[name], delta), name
    torch.testing.assert_close(kept.item_row_sums(split.n_items), reference.item_row_sums(split.n_items))
    torch.testing.assert_close(kept.n_examples, reference.n_examples)
    assert bool((kept.positives[is_pseudo] == -1).all()) and bool((sent.positives[is_pseudo] >= 0).all())
    assert not kept.row_mask[is_pseudo].any()  # no row of theirs is uploaded
    assert not torch.allclose(kept.private["user"], reference.private["user"])


def test_new_clients_refuse_a_second_protocol() -> None:
    with pytest.raises(Exception, match="two protocols"):
        with_settings(RunConfig(), new_clients=0.2, sparse_fraction=0.5)
    with pytest.raises(Exception, match="--join-items is empty"):
        with_settings(RunConfig(), new_clients=0.2, join_items=())
    with pytest.raises(Exception, match="popularity is not one"):
        with_settings(RunConfig(method="popularity"), new_clients=0.2)


def test_a_run_with_new_clients_fits_its_denoiser_once_per_seed(tmp_path, monkeypatch) -> None:
    from mmfedrec.experiment import run_experiment
    from mmfedrec.generators.augmenters.diffusion import DiffusionAugmenter

    fits = []
    fit = DiffusionAugmenter.fit
    monkeypatch.setattr(DiffusionAugmenter, "fit", lambda self, *args: fits.append(1) or fit(self, *args))
    config = with_settings(
        RunConfig(method="ours-id-only"),
        rounds=2,
        synthetic_users=80,
        synthetic_items=60,
        eval_negatives=30,
        new_clients=0.2,
        augment="diffusion",
        denoiser_rounds=2,
        join_epochs=1,
        cache_dir=tmp_path / "cache",
    )
    summary = run_experiment(config, tmp_path / "run")
    assert len(fits) == 1  # training and the three joining sizes share it
    assert {"new-1", "new-3", "new-5"} <= set(summary["buckets"])
    assert summary["buckets"]["new-1"]["users"] > 0
