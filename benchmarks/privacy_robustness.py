"""Utility vs privacy and robustness on one dataset: each setting is a real `mmfedrec train` run.

    python benchmarks/privacy_robustness.py --root ../shared/data/ml-100k --rounds 30 --out runs/bench-privacy

Prints a Markdown table (test NDCG@10 / HR@10 sampled, epsilon, faults) and writes it to
<out>/privacy_robustness.md. Without --root it uses the embedded synthetic dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_runs import cell, dataset_args, train

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

    rows = [
        "| setting | test ndcg@10 | test hr@10 | epsilon (delta 1e-5) | dropped / rejected | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, flags in SETTINGS.items():
        out = args.out / name.replace(" ", "-").replace(",", "").replace("%", "pct").replace("=", "")
        run = ["--method", args.method, *dataset_args(args.root, None), "--rounds", str(args.rounds)]
        summary, command = train([*run, "--eval-every", "5", "--seeds", args.seeds, *flags], out, args.threads)
        epsilon = summary.get("privacy", {}).get("epsilon", float("inf"))
        faults = summary["faults"]
        rows.append(
            f"| {name} | {cell(summary, 'sampled', 'ndcg@10')} | {cell(summary, 'sampled', 'hr@10')} | {epsilon:.2f} | "
            f"{faults['dropped']:.0f} / {faults['rejected_updates']:.0f} | `{command}` |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    (args.out / "privacy_robustness.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
