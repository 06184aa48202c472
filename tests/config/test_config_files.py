"""`mmfedrec train --config`: a printed config, a run's config.json and flags all train the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmfedrec.cli import main

TINY = ["--synthetic-users", "80", "--synthetic-items", "60", "--eval-negatives", "30", "--quiet"]


def test_print_config_and_config_json_reproduce_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--method", "ours-id-only", "--rounds", "2", "--lr", "0.123", *TINY, "--cache-dir", str(tmp_path / "c")]
    assert main(["train", *flags, "--print-config"]) == 0
    (tmp_path / "c.toml").write_text(capsys.readouterr().out)
    assert main(["train", *flags, "--out", str(tmp_path / "flags"), "--json"]) == 0
    by_flags = json.loads(capsys.readouterr().out)
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "file"), "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert main(["train", "--config", str(tmp_path / "flags"), "--out", str(tmp_path / "again"), "--json"]) == 0
    by_run = json.loads(capsys.readouterr().out)
    assert by_flags["test"] == by_file["test"] == by_run["test"]
    assert by_flags["config"] == by_file["config"] == by_run["config"]
    assert by_flags["config"]["local"]["lr"] == 0.123


def test_flags_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text('method = "fedavg-mf"\n[local]\nlr = 0.2\nbatch_size = 8\n')
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--lr", "0.05", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert 'method = "fedavg-mf"' in printed and "lr = 0.05" in printed and "batch_size = 8" in printed


def test_a_bad_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("[local]\nlrr = 0.1\n")
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--print-config"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "unknown key local.lrr" in error


def test_run_passes_its_engine_to_every_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mmfedrec run --engine flower-sim` once trained in-process without saying so."""
    argv = ["run", "--methods", "popularity", "--engine", "flower-sim", "--out", str(tmp_path / "main"), *TINY]
    assert main(argv) == 2
    assert "method 'popularity' is not a federated method that aggregates" in capsys.readouterr().err
