"""The Training tab's generator: one update per round with metrics and communication."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmfedrec.app.training import ensure_default_run, train_live


def test_train_live_yields_a_growing_curve_per_round(tmp_path: Path) -> None:
    updates = list(train_live("ours-id-only", rounds=3, users=40, items=60, cache_dir=tmp_path / "cache"))
    per_round = [u for u in updates if u.round > 0]
    assert [u.round for u in per_round] == [1, 2, 3] and per_round[-1].done
    assert len(per_round[-1].metrics) == 6 and set(per_round[-1].metrics["metric"]) == {"valid ndcg@10", "valid hr@10"}
    assert per_round[-1].communication["KB"].gt(0).all()
    assert "KB up" in per_round[-1].message
    assert "Client steps: the median client has" in per_round[-1].message  # the count decides, and says so


def test_train_live_refuses_bad_settings() -> None:
    for settings in ({"rounds": 0}, {"users": "many"}, {"method": "popularity"}, {"items": 10**6}):
        updates = list(train_live(**settings))
        assert len(updates) == 1 and updates[0].done and updates[0].message.startswith("Cannot start")


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"rounds": 2.7}, "rounds must be a whole number from 1 to 50, not 2.7"),
        ({"rounds": None}, "rounds must be a whole number from 1 to 50."),
        ({"users": float("nan")}, "users must be a whole number from 20 to 3000"),
        ({"items": 1e9}, "items must be a whole number from 60 to 2000"),
        ({"dp_epsilon": -1}, "the DP budget ε must be a number from 0 (off) to 100"),
    ],
)
def test_train_live_says_what_to_change_and_never_rounds(settings: dict, said: str) -> None:
    """Rounds 2.7 became 3 silently; out-of-range values raised in Gradio's preprocessing instead."""
    updates = list(train_live(**settings))
    assert len(updates) == 1 and updates[0].done and said in updates[0].message


def test_train_live_with_dp_reports_the_epsilon_spent(tmp_path: Path) -> None:
    updates = list(train_live("fedavg-mf", 2, 40, 60, tmp_path / "cache", dp_epsilon=4.0))
    spent = [float(re.search(r"ε = ([0-9.]+) of 4", u.message).group(1)) for u in updates if u.round > 0]
    assert len(spent) == 2 and 0 < spent[0] < spent[1] <= 4.0 * 1.01
    plain = list(train_live("fedavg-mf", 1, 40, 60, tmp_path / "cache"))[-1]
    assert "ε" not in plain.message


def test_default_run_is_trained_once(tmp_path: Path) -> None:
    out = tmp_path / "app-default"
    kwargs = {"cache_dir": tmp_path / "cache", "rounds": 1, "users": 40, "items": 60, "progress": False}
    assert ensure_default_run(out, **kwargs) == out and (out / "model.safetensors").is_file()
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    ensure_default_run(out, **kwargs)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_training_plots_draw_one_line_per_series(tmp_path: Path) -> None:
    from mmfedrec.app.ui import line_figure

    last = list(train_live("fedavg-mf", rounds=2, users=40, items=60, cache_dir=tmp_path / "cache"))[-1]
    figure = line_figure(last.metrics, "value", "metric", "validation")
    assert [len(line.get_xdata()) for line in figure.axes[0].get_lines()] == [2, 2]
    assert line_figure(last.metrics.iloc[:0], "value", "metric", "validation") is None
