"""Where does the personalised router pay? ours against one expert and against a shared gate,
overall and by how active a client is.

    python benchmarks/router_table.py --ml ../shared/data/ml-100k --hm ../shared/data/hm-fashion-sample \
        --seeds 0,1,2 --out runs/bench-router

For each dataset and split (synthetic; ML-100K by time and at random; H&M by time) and method
(`ours`: experts shared, each client's gate private; `ours-no-moe`: one expert; `ours-shared-gate`:
the gate aggregated like the experts), one run at the defaults. Writes <out>/router.md: test
NDCG@10 (99 sampled negatives), mean ± std over seeds, for all users and per activity quintile (q1
= the least active fifth of the evaluated users), and each ablation's change against ours.
Finished cells are read back, so a stopped benchmark resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generalization import datasets
from train_runs import run_cell, write_table

METHODS = ("ours", "ours-no-moe", "ours-shared-gate")
BUCKETS = ("all", "q1", "q2", "q3", "q4", "q5")


def ndcg(summary: dict, bucket: str) -> tuple[float, float]:
    """(mean, std over seeds) of the test's sampled NDCG@10 in `bucket` ("all": every test user)."""
    if bucket == "all":
        return summary["test"]["sampled"]["ndcg@10"], summary.get("test_std", {}).get("sampled", {}).get("ndcg@10", 0.0)
    found = summary["buckets"][bucket]
    return found["sampled"]["ndcg@10"], found["std"]["sampled"]["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml", type=Path, help="the ml-100k folder (its TMDB posters beside it)")
    parser.add_argument("--hm", type=Path, help="the H&M sample folder")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-router"))
    args = parser.parse_args()
    header = " | ".join(f"{bucket} NDCG@10" for bucket in BUCKETS)
    lines = [f"| data | method | {header} |", "| --- | --- |" + " --- |" * len(BUCKETS)]
    commands = []
    for label, data_flags in datasets(args.ml, args.hm).items():
        reference: dict[str, float] = {}
        for method in METHODS:
            flags = [*data_flags, "--method", method, "--seeds", args.seeds]
            slug = f"{label.replace(' ', '-').replace('&', '')}-{method}"
            summary, command = run_cell(flags, args.out / slug, args.threads)
            commands.append(command)
            cells = []
            for bucket in BUCKETS:
                mean, std = ndcg(summary, bucket)
                reference.setdefault(bucket, mean)
                versus = "" if method == "ours" else f" ({100 * (mean / reference[bucket] - 1):+.1f} %)"
                cells.append(f"{mean:.4f} ± {std:.4f}{versus}")
            lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    write_table(args.out / "router.md", lines, commands)


if __name__ == "__main__":
    main()
