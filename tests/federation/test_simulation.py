import numpy as np
import pytest
import torch

from mmfedrec.config import CompressionConfig, RunConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.errors import MmfedrecError
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.engines.simulation import Simulation
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split


def make_simulation(
    engine: str,
    model_name: str = "moe",
    lr: float = 0.01,
    history: int = 0,
    optimizer: str = "adam",
    federate: bool = True,
    compression: CompressionConfig | None = None,
    **settings: object,
) -> Simulation:
    """A small simulation; `engine` is "batched" or "loop", `settings` are the tree's fields by name."""
    split = planted_split()
    config = with_settings(
        RunConfig(engine="loop" if engine == "loop" else "sim", compression=compression or CompressionConfig()),
        lr=lr,
        batch_size=8,
        local_optimizer=optimizer,
        max_cells=256,
        **settings,
    )
    tower = ItemTower(split.n_items, 16, generator=torch.Generator().manual_seed(0))
    model = build_model(model_name, 16, n_experts=3, history=history)
    return Simulation(model, tower, split, config, seed=0, federate=federate)


@pytest.mark.parametrize(
    ("model_name", "row_average"),
    [("moe", "senders"), ("mf", "senders"), ("ncf", "senders"), ("pfedrec", "senders"), ("mf", "clients")],
)
def test_batched_engine_matches_the_per_client_loop(model_name: str, row_average: str) -> None:
    batched = make_simulation("batched", model_name, row_average=row_average)
    loop = make_simulation("loop", model_name, row_average=row_average)
    for round_index in range(2):
        stats_batched = batched.run_round(round_index)
        stats_loop = loop.run_round(round_index)
        assert stats_batched.upload_bytes_per_client == stats_loop.upload_bytes_per_client
    # Adam's first step on a near-zero gradient (softmax's far negatives) is sign-like, so the engines'
    # different summation orders may move such an entry by a few % of a 0.001 shared step.
    for name, tensor in batched.state().items():
        torch.testing.assert_close(tensor, loop.state()[name], atol=5e-5, rtol=1e-4, msg=name)
    metrics_batched = evaluate(batched.scorer(), batched.split, "test")
    metrics_loop = evaluate(loop.scorer(), loop.split, "test")
    assert metrics_batched["sampled"]["ndcg@10"] == pytest.approx(metrics_loop["sampled"]["ndcg@10"], abs=1e-6)


def test_federated_training_learns_the_planted_groups() -> None:
    simulation = make_simulation("batched", lr=0.05)
    before = evaluate(simulation.scorer(), simulation.split, "valid")["sampled"]["hr@10"]
    for round_index in range(20):
        simulation.run_round(round_index)
    after = evaluate(simulation.scorer(), simulation.split, "valid")["sampled"]["hr@10"]
    assert after > before + 0.2
    assert after > 0.8  # 20 negatives + 1 positive: chance is 10/21


def test_local_only_keeps_item_vectors_private() -> None:
    simulation = make_simulation("batched", "mf", federate=False)
    tower_before = simulation.tower.id_table.detach().clone()
    stats = simulation.run_round(0)
    assert torch.equal(simulation.tower.id_table.detach(), tower_before)
    assert stats.upload_bytes_per_client == 0.0
    assert not np.allclose(simulation.local_tables[0].numpy(), simulation.local_tables[1].numpy())


def test_row_average_over_clients_moves_rare_items_less_and_is_fedavg_only() -> None:
    senders, clients = make_simulation("batched", "mf"), make_simulation("batched", "mf", row_average="clients")
    start = senders.server.item_table().clone()
    senders.run_round(0)
    clients.run_round(0)
    moved_senders = (senders.server.item_table() - start).norm(dim=1)
    moved_clients = (clients.server.item_table() - start).norm(dim=1)
    touched = moved_senders > 0
    assert touched.any() and bool((moved_clients <= moved_senders + 1e-7).all())
    assert bool((moved_clients[touched] < moved_senders[touched]).any())  # items not every client trained
    with pytest.raises(MmfedrecError, match="aggregator median needs each client's upload"):
        with_settings(RunConfig(), row_average="clients", aggregator="median")
    with pytest.raises(MmfedrecError, match=r"--row-average .row_average. must be one of senders, clients"):
        with_settings(RunConfig(), row_average="all")
