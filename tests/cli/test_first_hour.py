"""A new user's first hour: each input that once ended in a traceback or a silent surprise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmfedrec.cli import main

TINY = ["--synthetic-users", "60", "--synthetic-items", "50", "--eval-negatives", "20", "--quiet"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    return error


def train(tmp_path: Path, *extra: str) -> int:
    argv = ["train", "--method", "fedavg-mf", "--rounds", "1", *TINY, "--cache-dir", str(tmp_path / "cache")]
    return main([*argv, *extra])


def test_an_out_or_resume_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert train(tmp_path, "--out", str(a_file)) == 2
    assert "a file is there; expected a folder" in one_line_error(capsys)
    assert train(tmp_path, "--out", str(a_file / "sub")) == 2
    assert "cannot create the folder" in one_line_error(capsys)
    assert main(["train", "--resume", str(a_file)]) == 2
    assert "not a run folder" in one_line_error(capsys)
    assert a_file.read_text() == "mine"


def test_too_many_eval_negatives_name_the_user_and_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.csv"
    rows = [f"u{u},i{i},{t}" for u in range(3) for t, i in enumerate(range(u, u + 8))]
    events.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")  # 10 items, user u0 touched 8
    argv = ["--dataset", "csv", "--interactions", str(events), "--eval-negatives", "5", "--out", str(tmp_path / "r")]
    assert main(["train", "--method", "popularity", *argv, "--quiet", "--cache-dir", str(tmp_path / "c")]) == 2
    error = one_line_error(capsys)
    assert "user u0 touched 8 of 10 items" in error and "lower --eval-negatives to at most 2" in error


@pytest.mark.parametrize(
    "flag", ["--dp-epsilon", "--dp-delta", "--fedprox-mu", "--norm-bound", "--trim", "--lr", "--pseudo-weight"]
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_nan_and_inf_are_refused_even_for_a_feature_that_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    assert train(tmp_path, flag, value, "--out", str(tmp_path / "r")) == 2
    assert f"{flag} " in one_line_error(capsys) and not (tmp_path / "r").exists()


def test_a_run_folder_works_from_another_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert train(Path("."), "--out", "run", "--checkpoint-every", "1") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert Path(config["data"]["cache_dir"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert main(["train", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert not (elsewhere / ".cache").exists()  # the run's own cache, not one under the new folder


def test_an_out_holding_a_run_is_refused_unless_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert train(tmp_path, "--out", str(out)) == 0
    assert (out / "model.safetensors").exists()
    capsys.readouterr()
    argv = ["train", "--method", "popularity", *TINY, "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert main(argv) == 2
    assert "holds a run already; pass --overwrite" in one_line_error(capsys)
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "model.safetensors").exists()  # popularity has no model: the old one is gone
    assert json.loads((out / "config.json").read_text())["method"] == "popularity"


def test_a_failed_run_marks_its_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.csv"
    events.write_text("user,item,timestamp\n1,2,x\n")
    out = tmp_path / "run"
    argv = ["train", "--method", "fedavg-mf", "--dataset", "csv", "--interactions", str(events), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    assert "timestamp" in one_line_error(capsys)
    assert "timestamp" in (out / "FAILED").read_text()


def test_a_missing_text_model_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--method", "ours-no-image", "--text-model", "/nonexistent/minilm", "--out", str(tmp_path / "r")]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--text-model /nonexistent/minilm: no such folder" in one_line_error(capsys)


def test_data_stats_names_the_unreadable_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.jpg").write_text("not a picture")
    (tmp_path / "items.csv").write_text("item_id,title,text,image_path\nsku-1,Mug,,broken.jpg\nsku-2,Plate,,\n")
    (tmp_path / "events.csv").write_text("user,item,timestamp\nu1,sku-1,2020-01-01\nu1,sku-2,2020-01-02\n")
    files = ["--interactions", str(tmp_path / "events.csv"), "--items", str(tmp_path / "items.csv")]
    assert main(["data", "stats", "--dataset", "csv", *files, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "note: unreadable images: 1 items: sku-1" in capsys.readouterr().out


def test_tiny_candidate_lists_are_flagged_and_resumed_rounds_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--method", "fedavg-mf", "--rounds", "2", "--checkpoint-every", "1", "--out", str(out)]
    argv += ["--synthetic-users", "60", "--synthetic-items", "50", "--eval-negatives", "9"]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "among 10 candidates only: HR@10 by chance is 1.00" in capsys.readouterr().err
    (out / "seed-0.json").unlink()  # as if killed after its last checkpoint
    assert main(["train", "--resume", str(out)]) == 0
    log = capsys.readouterr().err
    assert "resuming from checkpoint-seed0.safetensors" in log and "(from the checkpoint, not trained again)" in log


def test_an_export_with_string_ids_and_iso_dates_trains_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"cust-{u},sku-{(u * 7 + t) % 40:03d},2021-03-{1 + t:02d}T10:00:00Z" for u in range(30) for t in range(6)]
    (tmp_path / "events.csv").write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    argv = ["train", "--method", "fedavg-mf", "--dataset", "csv", "--interactions", str(tmp_path / "events.csv")]
    argv += ["--rounds", "2", "--eval-negatives", "20", "--out", str(tmp_path / "run"), "--json", "--quiet"]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test_users"] == 30 and summary["split"] == "time"
