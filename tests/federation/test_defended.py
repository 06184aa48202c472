import logging

import pytest
import torch

from mmfedrec.config import RunConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.aggregation.defended import ClientUploads, reject_non_finite
from mmfedrec.federation.engines.simulation import Simulation
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split


def simulation(
    defense: dict, model: str = "moe", lr: float = 0.05, n_users: int = 60, row_average: str = "senders"
) -> Simulation:
    """`defense`: robust and privacy settings by name, and the DP noise multiplier."""
    split = planted_split(n_users=n_users)
    settings = dict(defense)
    noise = settings.pop("noise_multiplier", 0.0)
    config = with_settings(RunConfig(), lr=lr, batch_size=8, expertwise=False, row_average=row_average, **settings)
    tower = ItemTower(split.n_items, 16, generator=torch.Generator().manual_seed(0))
    return Simulation(build_model(model, 16, n_experts=3), tower, split, config, seed=0, noise_multiplier=noise)


def train(sim: Simulation, rounds: int) -> float:
    for round_index in range(1, rounds + 1):
        sim.run_round(round_index)
    return evaluate(sim.scorer(), sim.split, "test")["sampled"]["ndcg@10"]


@pytest.mark.parametrize(
    ("defense", "row_average"),
    [
        (dict(norm_bound=1e9), "senders"),
        (dict(secure_agg=True), "senders"),
        (dict(norm_bound=1e9), "clients"),
    ],
)
def test_the_per_client_path_and_secure_aggregation_match_plain_fedavg(defense: dict, row_average: str) -> None:
    plain = simulation(dict(), row_average=row_average)
    defended = simulation(defense, row_average=row_average)
    assert defended.defense.per_client and not plain.defense.per_client
    for round_index in range(1, 3):
        plain.run_round(round_index)
        defended.run_round(round_index)
    for name, tensor in plain.state().items():
        torch.testing.assert_close(defended.state()[name], tensor, atol=1e-5, rtol=1e-4, msg=name)


def test_non_finite_uploads_are_rejected_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    uploads = ClientUploads(
        clients=torch.tensor([4, 7, 9]),
        dense={"w": torch.tensor([[1.0], [float("nan")], [3.0]])},
        weights=torch.ones(3),
        row_owner=torch.tensor([0, 2]),
        row_items=torch.tensor([1, 1]),
        row_deltas=torch.tensor([[1.0], [float("inf")]]),
    )
    with caplog.at_level(logging.WARNING, logger="mmfedrec"):
        kept, rejected = reject_non_finite(uploads, round_index=3)
    assert rejected == 2 and kept.clients.tolist() == [4]
    assert "round 3: rejected 2 non-finite update(s) from clients [7, 9]" in caplog.text


def test_dropped_clients_never_reply_and_the_round_completes() -> None:
    sim = simulation(dict(dropout=0.3))
    stats = sim.run_round(1)
    assert stats.dropped == round(0.3 * 60) and stats.clients == 60 - stats.dropped


def test_robust_aggregation_withstands_byzantine_clients_where_fedavg_does_not() -> None:
    rounds = 12
    clean = train(simulation(dict(), lr=0.1, n_users=100), rounds)
    attacked_mean = train(simulation(dict(byzantine=0.1), lr=0.1, n_users=100), rounds)
    attacked_median = train(simulation(dict(byzantine=0.1, aggregator="median"), lr=0.1, n_users=100), rounds)
    attacked_trimmed = train(
        simulation(dict(byzantine=0.1, aggregator="trimmed-mean", trim=0.2), lr=0.1, n_users=100), rounds
    )
    assert attacked_mean < 0.9 * clean  # plain FedAvg degrades
    assert attacked_median >= 0.95 * clean
    assert attacked_trimmed >= 0.95 * clean


def test_dp_noise_changes_the_model_but_training_still_runs() -> None:
    noisy = simulation(dict(noise_multiplier=1.0, dp_clip=0.5))
    plain = simulation(dict(norm_bound=0.5))
    noisy.run_round(1)
    plain.run_round(1)
    assert not torch.allclose(noisy.tower.id_table, plain.tower.id_table)


@pytest.mark.parametrize("dp", [False, True])
def test_fixed_point_sum_equals_the_sum_of_the_encoded_dense_vectors(dp: bool) -> None:
    """What a Flower silo hands SecAgg+ is, bit for bit, the sum of its clients' encoded
    `secure_vectors`, without forming their dense rows."""
    import numpy as np

    from mmfedrec.federation.aggregation.defended import Defense, fixed_point_sum, secure_vectors
    from mmfedrec.federation.privacy.secure_agg import encode_fixed

    generator = torch.Generator().manual_seed(0)
    n_items, width = 7, 3
    owners = torch.tensor([0, 0, 1, 2, 2, 2])
    items = torch.tensor([1, 4, 4, 0, 1, 6])  # one row per (client, item), as collect_uploads merges them
    uploads = ClientUploads(
        clients=torch.tensor([5, 9, 12]),
        dense={"w": torch.randn(3, 2, 2, generator=generator), "b": torch.randn(3, 2, generator=generator)},
        weights=torch.tensor([3.0, 1.0, 8.0]),
        row_owner=owners,
        row_items=items,
        row_deltas=torch.randn(6, width, generator=generator),
    )
    defense = Defense(noise_multiplier=1.0 if dp else 0.0)
    expected = np.add.reduce(encode_fixed(secure_vectors(uploads, defense, n_items)), axis=0, dtype=np.uint64)
    np.testing.assert_array_equal(fixed_point_sum(uploads, defense, n_items), expected)
