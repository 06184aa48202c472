"""The "auto" client steps are read from the data, and nothing trains before they are."""

from __future__ import annotations

import pytest

from mmfedrec.config import LocalConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import AUTO_STEPS, RunConfig
from mmfedrec.federation.engines.runner import train_seed
from mmfedrec.federation.local.auto_steps import (
    STEP_REGIMES,
    describe,
    median_client_interactions,
    probes_steps,
    with_steps,
)
from mmfedrec.federation.local.training import local_train
from tests.federation.helpers import planted_split
from tests.federation.test_simulation import make_simulation


def test_dense_data_gets_sgd_item_steps_and_sparse_data_adam() -> None:
    # 13.5 per client against 10 per item: a boundary the item's count would put elsewhere
    median = median_client_interactions(planted_split())
    dense = make_simulation("batched", lr=0.05, dense_events=int(median))
    sparse = make_simulation("batched", lr=0.05, dense_events=int(median) + 1)
    assert dense.config.local.row_step == ("sgd", AUTO_STEPS["dense"]["row_lr"])
    assert dense.config.local.shared_lr == AUTO_STEPS["dense"]["shared_lr"]
    assert sparse.config.local.row_step == ("adam", 0.05)
    assert sparse.config.local.shared_lr == AUTO_STEPS["sparse"]["shared_lr"]


def test_settings_given_are_kept_on_any_data() -> None:
    given = LocalConfig(row_optimizer="adam", shared_lr=0.02, row_lr=7.0)
    assert given.resolved(dense=True) == given
    assert LocalConfig(row_optimizer="sgd").resolved(dense=False).row_step == ("sgd", 0.1)  # row_lr 0 = --lr
    assert LocalConfig(row_lr=20.0).resolved(dense=True).row_step == ("sgd", 20.0)
    assert LocalConfig(row_lr=20.0).resolved(dense=False).row_step == ("adam", 0.1)  # not Adam at 20


def test_local_training_refuses_steps_left_on_auto() -> None:
    with pytest.raises(ValueError, match="auto"):
        local_train(None, {}, {}, None, None, LocalConfig())


def test_the_log_names_the_regime_only_when_a_step_was_auto() -> None:
    split, config = planted_split(), with_settings(RunConfig(), steps_probe=0)
    line = describe(config, split)
    assert f"the median client has {median_client_interactions(split):g} training interactions" in line
    assert "sparse data, item step adam at 0.1, shared step 0.001" in line
    given = LocalConfig(row_optimizer="sgd", shared_lr=0.05)
    assert describe(RunConfig(local=given), split) is None
    assert "trains the dense and the sparse steps for 20 rounds" in describe(RunConfig(), split)


@pytest.mark.parametrize(
    ("settings", "probes"),
    [
        ({}, True),
        ({"steps_probe": 0}, False),
        ({"row_optimizer": "adam", "shared_lr": 0.01}, False),  # nothing left on auto
        ({"engine": "flower-sim"}, False),  # every silo would train twice
        ({"dp_epsilon": 8.0}, False),  # every client would spend its budget twice
    ],
)
def test_the_probe_runs_only_where_it_is_sound(settings: dict, probes: bool) -> None:
    assert probes_steps(with_settings(RunConfig(), **settings)) is probes


def test_the_probe_keeps_the_steps_better_on_validation_and_trains_on_as_if_alone() -> None:
    split, method = planted_split(), method_spec("ours-id-only")
    config = with_settings(RunConfig(method="ours-id-only"), rounds=4, eval_every=2, steps_probe=2)
    entries = []
    probed = train_seed(method, split, None, config, seed=0, on_round=entries.append)
    forced = {regime: train_seed(method, split, None, with_steps(config, regime), seed=0) for regime in STEP_REGIMES}
    at_probe = {regime: outcome.curve[1]["valid"]["sampled"]["ndcg@10"] for regime, outcome in forced.items()}
    assert probed.steps["valid"] == at_probe
    chosen = max(STEP_REGIMES, key=at_probe.get)
    assert at_probe["dense"] != at_probe["sparse"]  # else the check below could not fail
    assert probed.steps["chosen"] == chosen
    for protocol in ("sampled", "full"):  # the kept trainer went on exactly as if it had run alone
        assert probed.test[protocol] == forced[chosen].test[protocol]
    assert [entry["round"] for entry in entries] == [1, 2, 3, 4]  # the dropped regime's rounds are not reported
    assert probed.steps["dropped_seconds"] > 0
