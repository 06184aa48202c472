import dataclasses
import itertools

import pytest
import torch

from mmfedrec.config import LocalConfig, TrainConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.engines.central import CentralTrainer
from mmfedrec.federation.local.schedule import lr_factor
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split
from tests.federation.test_simulation import make_simulation


def test_cosine_decays_from_one_and_every_round_trains() -> None:
    factors = [lr_factor("cosine", r, 10) for r in range(1, 11)]
    assert factors[0] == 1.0
    assert factors[5] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(factors))
    assert factors[-1] > 0
    assert lr_factor("constant", 7, 10) == 1.0


def test_an_unknown_schedule_is_refused_by_name() -> None:
    with pytest.raises(MmfedrecError, match=r"--lr-schedule.*constant, cosine.*'linear'"):
        TrainConfig(lr_schedule="linear")


def test_scaling_reaches_every_learning_rate() -> None:
    scaled = LocalConfig(lr=0.2, shared_lr=0.04).scaled(0.5)
    assert (scaled.lr, scaled.shared_lr, scaled.row_step[1]) == pytest.approx((0.1, 0.02, 0.1))
    assert LocalConfig(lr=0.2, row_optimizer="sgd", row_lr=30.0).scaled(0.5).row_step == ("sgd", 15.0)


def test_a_cosine_round_trains_as_a_constant_one_at_the_scaled_rates() -> None:
    cosine = make_simulation("batched", history=3, rounds=2, lr_schedule="cosine")
    constant = make_simulation("batched", history=3, rounds=2, lr_schedule="constant")
    cosine.run_round(1)
    constant.run_round(1)  # round 1 of cosine: the full rates
    constant.config = dataclasses.replace(constant.config, local=constant.config.local.scaled(0.5))
    cosine.run_round(2)  # round 2 of 2: half the rates
    constant.run_round(2)
    for name, tensor in cosine.state().items():
        torch.testing.assert_close(tensor, constant.state()[name], msg=name)
    unscaled = make_simulation("batched", history=3, rounds=2, lr_schedule="constant")
    unscaled.run_round(1)
    unscaled.run_round(2)
    assert not torch.allclose(unscaled.state()["private.user"], cosine.state()["private.user"])


def test_the_central_trainer_steps_adam_by_the_schedule() -> None:
    split = planted_split()
    tower = ItemTower(split.n_items, 16, generator=torch.Generator().manual_seed(0))
    model = build_model("mf", 16)
    trainer = CentralTrainer(model, tower, split, seed=0, lr=0.01, lr_schedule="cosine", rounds=2)
    trainer.run_round(1)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    trainer.run_round(2)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
