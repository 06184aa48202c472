"""The Training tab's generator: one update per round with metrics and communication."""

from __future__ import annotations

from pathlib import Path

from mmfedrec.app.training import ensure_default_run, train_live


def test_train_live_yields_a_growing_curve_per_round(tmp_path: Path) -> None:
    updates = list(train_live("ours-id-only", rounds=3, users=40, items=60, cache_dir=tmp_path / "cache"))
    per_round = [u for u in updates if u.round > 0]
    assert [u.round for u in per_round] == [1, 2, 3] and per_round[-1].done
    assert len(per_round[-1].metrics) == 6 and set(per_round[-1].metrics["metric"]) == {"valid ndcg@10", "valid hr@10"}
    assert per_round[-1].communication["KB"].gt(0).all()
    assert "KB up" in per_round[-1].message


def test_train_live_refuses_bad_settings() -> None:
    for settings in ({"rounds": 0}, {"users": "many"}, {"method": "popularity"}, {"items": 10**6}):
        updates = list(train_live(**settings))
        assert len(updates) == 1 and updates[0].done and updates[0].message.startswith("Cannot start")


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
