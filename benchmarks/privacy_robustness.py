"""Utility vs privacy and robustness on one dataset: each setting is a real `mmfedrec train` run.

    python benchmarks/privacy_robustness.py --root ../shared/data/ml-100k --rounds 30 --out runs/bench-privacy

Prints a Markdown table (test NDCG@10 / HR@10 sampled, epsilon, faults) and writes it to
<out>/privacy_robustness.md. Without --root it uses the embedded synthetic dataset.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    "no DP": [],
    "DP eps=8": ["--dp-epsilon", "8"],
    "DP eps=4": ["--dp-epsilon", "4"],
    "DP eps=1": ["--dp-epsilon", "1"],
    "30% dropout": ["--dropout", "0.3"],
    "10% byzantine, fedavg": ["--byzantine", "0.1"],
    "10% byzantine, median": ["--byzantine", "0.1", "--aggregator", "median"],
    "10% byzantine, trimmed mean": ["--byzantine", "0.1", "--aggregator", "trimmed-mean", "--trim", "0.2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="ML-100K folder (default: synthetic data)")
    parser.add_argument("--method", default="ours-id-only")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-privacy"))
    args = parser.parse_args()

    data = ["--dataset", "movielens-100k", "--root", str(args.root)] if args.root else []
    rows = [
        "| setting | test ndcg@10 | test hr@10 | epsilon (delta 1e-5) | dropped / rejected | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, flags in SETTINGS.items():
        out = args.out / name.replace(" ", "-").replace(",", "").replace("%", "pct").replace("=", "")
        command = ["mmfedrec", "--threads", str(args.threads), "train", "--method", args.method, *data]
        command += [
            "--rounds",
            str(args.rounds),
            "--eval-every",
            "5",
            "--seeds",
            args.seeds,
            "--quiet",
            "--out",
            str(out),
            *flags,
        ]
        subprocess.run([sys.executable, "-m", *command], check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
        test = summary["test"]["sampled"]
        epsilon = summary.get("privacy", {}).get("epsilon", float("inf"))
        faults = summary["faults"]
        rows.append(
            f"| {name} | {test['ndcg@10']:.4f} | {test['hr@10']:.4f} | {epsilon:.2f} | "
            f"{faults['dropped']:.0f} / {faults['rejected_updates']:.0f} | `{' '.join(command)}` |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    (args.out / "privacy_robustness.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
