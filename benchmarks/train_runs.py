"""Run `mmfedrec train` as a subprocess and read back its summary: the shared step of the
table-making benchmarks (quality_table.py, augmentation_table.py, privacy_robustness.py)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path


def train(args: list[str], out: Path, threads: int) -> tuple[dict, str]:
    """(summary.json, the command as a reader would type it) of one training run into `out`."""
    command = ["mmfedrec", "--threads", str(threads), "train", *args, "--quiet", "--overwrite", "--out", str(out)]
    subprocess.run([sys.executable, "-m", *command], check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text()), shlex.join(command)


def run_cell(flags: list[str], out: Path, threads: int) -> tuple[dict, str]:
    """A training run, read back when it already finished (a stopped benchmark resumes)."""
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text()), "(read back) " + " ".join(flags)
    return train(flags, out, threads)


def write_table(path: Path, lines: list[str], commands: list[str], heading: str = "Commands:") -> None:
    """A markdown table and, below it, the commands that made its cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*lines, "", heading, *[f"- `{command}`" for command in commands]]) + "\n")
    print(f"wrote {path}")


def dataset_args(root: Path | None, posters: Path | None) -> list[str]:
    """ML-100K (optionally with TMDB overviews and posters) when given, else the synthetic default."""
    if root is None:
        return []
    args = ["--dataset", "movielens-100k", "--root", str(root)]
    if posters is not None:
        args += ["--items-table", str(posters / "items.csv"), "--image-dir", str(posters / "posters")]
    return args


def cell(summary: dict, protocol: str, metric: str) -> str:
    mean = summary["test"][protocol][metric]
    std = summary.get("test_std", {}).get(protocol, {}).get(metric, 0.0)
    return f"{mean:.4f} ± {std:.4f}" if std else f"{mean:.4f}"


def add_real_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--root/--posters (ML-100K) and --hm (the H&M sample): the augmentation benchmarks' data."""
    parser.add_argument("--root", type=Path, help="MovieLens-100K folder")
    parser.add_argument("--posters", type=Path)
    parser.add_argument("--hm", type=Path, help="the H&M sample folder")


def real_datasets(args: argparse.Namespace) -> dict[str, list[str]]:
    """Dataset label -> flags: ML-100K and H&M where given, else the synthetic default."""
    datasets = {}
    if args.root is not None:
        datasets["ml-100k"] = dataset_args(args.root, args.posters)
    if args.hm is not None:
        datasets["h&m"] = ["--dataset", "hm-fashion", "--root", str(args.hm)]
    return datasets or {"synthetic": []}
