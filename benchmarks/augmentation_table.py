"""Does generative augmentation help sparse clients? The generators issue's table.

Two protocols, every run at the method's defaults otherwise (the model users get):
- `--protocol sparse`: half of the clients are cut to their 5 most recent training
  interactions (valid/test untouched); sparse clients get pseudo-interactions from each
  augmenter inside local training. Reported: the made-sparse and the dense clients.
- `--protocol new`: a fifth of the clients are held out of training and join the trained model
  with their 1, 3 or 5 most recent interactions (their own state trained, the shared model
  frozen), with each augmenter's pseudo-interactions. Reported: each joining size.

    python benchmarks/augmentation_table.py --root ../shared/data/ml-100k \
        --posters ../shared/data/ml-100k-posters-tmdb --hm ../shared/data/hm-fashion-sample \
        --seeds 0,1,2 --protocol new --out runs/bench-augment-new

Writes <out>/augmentation.md: per dataset, test NDCG@10 (sampled) per reported group and the
relative change against no augmentation. Without --root and --hm: the synthetic dataset. A cell
whose summary.json exists is read back, so a stopped table resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_runs import add_real_data_arguments, real_datasets, run_cell, write_table

AUGMENTERS = ("none", "popularity", "item-knn", "diffusion")
PROTOCOLS = {  # reported groups, and the flags that set the protocol up
    "sparse": (("sparse", "dense"), ["--sparse-fraction", "0.5", "--sparse-max", "5"]),
    "new": (("new-1", "new-3", "new-5"), ["--new-clients", "0.2"]),
}


def bucket(summary: dict, name: str) -> tuple[float, float]:
    return summary["buckets"][name]["sampled"]["ndcg@10"], summary["buckets"][name]["std"]["sampled"]["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_real_data_arguments(parser)
    parser.add_argument("--method", default="ours")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="sparse")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-augment"))
    args = parser.parse_args()

    datasets = real_datasets(args)
    groups, protocol_flags = PROTOCOLS[args.protocol]
    header = " | ".join(f"{group} NDCG@10 | vs none" for group in groups)
    rows = [f"| data | augmentation | {header} |", "|---|---|" + "---|---|" * len(groups)]
    commands = []
    for label, data_flags in datasets.items():
        baseline: list[float] = []
        for name in AUGMENTERS:
            flags = ["--method", args.method, *data_flags, "--seeds", args.seeds, "--augment", name, *protocol_flags]
            summary, command = run_cell(flags, args.out / label.replace("&", "") / name, args.threads)
            values = [bucket(summary, group) for group in groups]
            baseline = baseline or [mean for mean, _ in values]
            cells = [
                f"{mean:.4f} ± {std:.4f} | {100 * (mean / base - 1):+.1f}%"
                for (mean, std), base in zip(values, baseline, strict=True)
            ]
            rows.append(f"| {label} | {name} | {' | '.join(cells)} |")
            commands.append(command)
            print(rows[-1], flush=True)
            write_table(args.out / "augmentation.md", rows, commands)


if __name__ == "__main__":
    main()
