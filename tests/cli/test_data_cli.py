"""`mmfedrec data` through the real `main` (only the data subcommand registered, so this runs alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mmfedrec.cli
from tests.data.files import write_ml100k


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(mmfedrec.cli, "SUBCOMMAND_MODULES", ("mmfedrec.cli.data",))
    return mmfedrec.cli.main


def test_stats_json_is_one_object(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_ml100k(tmp_path / "ml")
    argv = ["data", "stats", "--dataset", "movielens-100k", "--root", str(root), "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {k: stats[k] for k in ("users", "items", "interactions", "items_with_text", "items_with_image")} == {
        "users": 3,
        "items": 4,
        "interactions": 8,
        "items_with_text": 4,
        "items_with_image": 0,
    }
    assert main(argv) == 0
    assert "interactions" in capsys.readouterr().out


def test_malformed_ratings_exit_2_naming_the_line(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_ml100k(tmp_path / "ml", ratings=["1\t1\t5\t100", "1\t2\t3\t100", "1\t3\tfour\t200"])
    code = main(["data", "stats", "--dataset", "movielens-100k", "--root", str(root), "--cache-dir", str(tmp_path)])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.endswith("u.data:3: column rating: expected a number, got 'four'")


def test_prepare_caches_dataset_and_one_split_per_seed(
    main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "prepare", "--synthetic-users", "40", "--synthetic-items", "150", "--eval-negatives", "20"]
    argv += ["--cache-dir", str(tmp_path)]
    assert main([*argv, "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("synthetic-*/split-*.safetensors")) == [
        "split-loo-time-seed0-neg20.safetensors",
        "split-loo-time-seed1-neg20.safetensors",
    ]
    assert str(next(tmp_path.glob("synthetic-*/split-loo-time-seed1-*.safetensors"))) in out


@pytest.mark.realdata
def test_real_movielens_stats(main, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    posters = shared_data / "ml-100k-posters-tmdb"
    argv = ["data", "stats", "--dataset", "movielens-100k", "--root", str(shared_data / "ml-100k")]
    argv += ["--items-table", str(posters / "items.csv"), "--image-dir", str(posters / "posters")]
    assert main([*argv, "--cache-dir", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert stats["items_with_image"] >= 1600
