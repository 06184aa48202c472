"""Training that diverges (NaN/inf) is stopped and said, never scored as a result."""

import pytest
import torch

from mmfedrec.config import RunConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.errors import TrainingDiverged
from mmfedrec.federation.aggregation.server import ServerModel
from mmfedrec.federation.engines.runner import train_seed
from mmfedrec.federation.engines.simulation import Simulation
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split


def test_the_server_refuses_a_non_finite_update_and_keeps_its_model() -> None:
    tower = ItemTower(6, 4, generator=torch.Generator().manual_seed(0))
    server = ServerModel({"experts.weight": torch.ones(2, 3)}, tower)
    before = server.item_table().clone()
    row_update = torch.zeros(6, 5)
    row_update[2, 1] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN or inf in item rows: training diverged"):
        server.apply_delta({"experts.weight": torch.zeros(2, 3)}, row_update)
    with pytest.raises(TrainingDiverged, match=r"NaN or inf in experts\.weight"):
        server.apply_delta({"experts.weight": torch.full((2, 3), float("inf"))}, torch.zeros(6, 5))
    torch.testing.assert_close(server.item_table(), before)
    assert torch.equal(server.shared["experts.weight"], torch.ones(2, 3))


def diverge_at(monkeypatch: pytest.MonkeyPatch, bad_round: int) -> None:
    run_round = Simulation.run_round

    def run_or_diverge(self: Simulation, round_index: int):
        if round_index == bad_round:
            raise TrainingDiverged("the aggregated client update is NaN or inf in item rows")
        return run_round(self, round_index)

    monkeypatch.setattr(Simulation, "run_round", run_or_diverge)


def test_a_seed_that_diverges_keeps_its_best_round_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    diverge_at(monkeypatch, bad_round=5)
    outcome = train_seed(
        method_spec("fedavg-mf"),
        planted_split(),
        None,
        with_settings(RunConfig(method="fedavg-mf"), rounds=8, eval_every=2),
        0,
    )
    assert outcome.diverged_round == 5
    assert outcome.best_round in (2, 4) and [e["round"] for e in outcome.curve] == [1, 2, 3, 4]
    assert outcome.to_json()["diverged_round"] == 5


def test_divergence_before_any_evaluation_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    diverge_at(monkeypatch, bad_round=1)
    with pytest.raises(TrainingDiverged, match="seed 0, round 1: the aggregated client update"):
        train_seed(
            method_spec("fedavg-mf"),
            planted_split(),
            None,
            with_settings(RunConfig(method="fedavg-mf"), rounds=4, eval_every=2),
            0,
        )


def test_a_step_set_that_diverges_in_the_probe_loses_to_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    run_round = Simulation.run_round

    def dense_diverges(self: Simulation, round_index: int):
        if self.config.local.row_step[0] == "sgd":  # the dense steps
            raise TrainingDiverged("the aggregated client update is NaN or inf in item rows")
        return run_round(self, round_index)

    monkeypatch.setattr(Simulation, "run_round", dense_diverges)
    config = with_settings(RunConfig(method="fedavg-mf"), rounds=4, eval_every=2, steps_probe=2)
    outcome = train_seed(method_spec("fedavg-mf"), planted_split(), None, config, 0)
    assert outcome.steps["chosen"] == "sparse" and outcome.steps["valid"]["dense"] is None
    assert outcome.diverged_round is None and [e["round"] for e in outcome.curve] == [1, 2, 3, 4]
