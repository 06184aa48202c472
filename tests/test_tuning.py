"""`mmfedrec tune`: a resumable search on validation whose best configuration trains as a file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mmfedrec.cli import main
from mmfedrec.config.methods import method_spec
from mmfedrec.config.spaces import search_space
from mmfedrec.config.tree import AUTO_HISTORY, AUTO_STEPS

TINY = ["--synthetic-users", "80", "--synthetic-items", "60", "--eval-negatives", "30", "--rounds", "2"]


def test_a_search_resumes_to_its_total_and_its_best_config_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "study", ["--cache-dir", str(tmp_path / "cache")]
    argv = ["tune", "--method", "fedavg-mf", *TINY, *cache, "--out", str(out), "--quiet"]
    assert main([*argv, "--trials", "2"]) == 0
    assert main([*argv, "--trials", "3"]) == 0  # resumes: one more trial, not three
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    best = trials.loc[trials["value"].idxmax()]
    capsys.readouterr()
    assert main(["train", "--config", str(out / "best.toml"), *cache, "--out", str(tmp_path / "best"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["local"]["lr"] == pytest.approx(best["params_lr"])
    assert summary["valid"]["sampled"]["ndcg@10"] == pytest.approx(best["value"])  # validation only, reproduced


def test_every_federated_method_searches_the_same_client_steps() -> None:
    spaces = {name: search_space(method_spec(name), time_ordered=True) for name in ("fedavg-mf", "fedncf", "ours")}
    common = set(spaces["fedavg-mf"])
    assert common <= set(spaces["fedncf"]) and common <= set(spaces["ours"])
    assert {"history", "id_shrink"} <= set(spaces["ours"]) - common  # what only ours reads
    assert "history" not in search_space(method_spec("ours"), time_ordered=False)  # no time order: no history
    assert search_space(method_spec("popularity"), time_ordered=True) == {}


def test_the_first_trials_are_the_configuration_given(tmp_path: Path) -> None:
    """So a tuned method never ends below its defaults on validation: "auto" client steps give one
    trial per step set the probe chooses between, then the search goes on from there."""
    argv = ["tune", "--method", "fedncf", *TINY, "--cache-dir", str(tmp_path / "cache"), "--lr", "0.2"]
    assert main([*argv, "--out", str(tmp_path / "study"), "--trials", "3", "--quiet"]) == 0
    trials = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert (trials["params_lr"][:2] == 0.2).all() and (trials["params_negatives"][:2] == 16).all()
    dense, sparse = trials.iloc[0], trials.iloc[1]
    assert (dense["params_row_optimizer"], dense["params_row_lr"]) == ("sgd", AUTO_STEPS["dense"]["row_lr"])
    assert dense["params_shared_lr"] == AUTO_STEPS["dense"]["shared_lr"]
    assert (sparse["params_row_optimizer"], sparse["params_shared_lr"]) == ("adam", AUTO_STEPS["sparse"]["shared_lr"])
    given = ["tune", "--method", "fedncf", *TINY, "--cache-dir", str(tmp_path / "cache"), "--row-optimizer", "adam"]
    given += ["--shared-lr", "0.02", "--out", str(tmp_path / "given"), "--trials", "2", "--quiet"]
    assert main(given) == 0  # steps given: one trial of them, then the search
    trials = pd.read_csv(tmp_path / "given" / "trials.csv")
    assert (trials.iloc[0]["params_row_optimizer"], trials.iloc[0]["params_shared_lr"]) == ("adam", 0.02)


def test_the_first_trial_of_ours_is_its_automatic_history(tmp_path: Path) -> None:
    """`model.history = -1` (auto) is the latest AUTO_HISTORY items on time-ordered data: the first
    trial is that, not a value outside the searched choices (the search used to fail on it)."""
    argv = ["tune", "--method", "ours-id-only", *TINY, "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(tmp_path / "study"), "--trials", "1", "--quiet"]) == 0
    assert pd.read_csv(tmp_path / "study" / "trials.csv").iloc[0]["params_history"] == AUTO_HISTORY


def test_a_timeout_that_is_not_positive_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--method", "fedavg-mf", "--timeout", "-5"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--timeout" in error and "> 0" in error


def test_augmentation_is_tuned_on_the_made_sparse_clients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "study", ["--cache-dir", str(tmp_path / "cache")]
    protocol = ["--augment", "popularity", "--sparse-fraction", "0.5", "--sparse-max", "3", "--n-pseudo", "5"]
    argv = ["tune", "--method", "fedavg-mf", *TINY, *protocol, *cache, "--out", str(out), "--quiet"]
    assert main([*argv, "--trials", "2", "--target", "augmentation"]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert {"params_n_pseudo", "params_pseudo_weight", "params_pseudo_trains"} <= set(trials.columns)
    assert "params_lr" not in trials.columns  # the model's settings stay as given
    assert trials.iloc[0]["params_n_pseudo"] == 5  # the first trial is the configuration given
    best = trials.loc[trials["value"].idxmax()]
    capsys.readouterr()
    assert main(["train", "--config", str(out / "best.toml"), *cache, "--out", str(tmp_path / "best"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["augment"]["n_pseudo"] == best["params_n_pseudo"]
    run = json.loads((tmp_path / "best" / "seed-0.json").read_text())
    assert run["valid"]["buckets"]["sparse"]["sampled"]["ndcg@10"] == pytest.approx(best["value"])
    refused = ["tune", "--method", "fedavg-mf", *TINY, *cache, "--out", str(tmp_path / "x"), "--target", "augmentation"]
    assert main(refused) == 2
    assert "give --augment and --sparse-fraction" in capsys.readouterr().err
