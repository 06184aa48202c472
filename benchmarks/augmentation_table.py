"""Does generative augmentation help sparse clients? The generators issue's table.

Half of the clients are cut to their 5 most recent training interactions (valid/test untouched);
sparse clients then get pseudo-interactions from each augmenter, inside local training. Every
run is at the method's defaults otherwise (the model users get).

    python benchmarks/augmentation_table.py --root ../shared/data/ml-100k \
        --posters ../shared/data/ml-100k-posters-tmdb --hm ../shared/data/hm-fashion-sample \
        --seeds 0,1,2 --out runs/bench-augment

Writes <out>/augmentation.md: per dataset, test NDCG@10 (sampled) on the made-sparse and the
dense clients, and the relative change against no augmentation. Without --root and --hm: the
synthetic dataset. A cell whose summary.json exists is read back, so a stopped table resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_runs import dataset_args, run_cell

AUGMENTERS = ("none", "popularity", "item-knn", "diffusion")


def bucket(summary: dict, name: str) -> tuple[float, float]:
    return summary["buckets"][name]["sampled"]["ndcg@10"], summary["buckets"][name]["std"]["sampled"]["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="MovieLens-100K folder")
    parser.add_argument("--posters", type=Path)
    parser.add_argument("--hm", type=Path, help="the H&M sample folder")
    parser.add_argument("--method", default="ours")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-augment"))
    args = parser.parse_args()

    datasets = {}
    if args.root is not None:
        datasets["ml-100k"] = dataset_args(args.root, args.posters)
    if args.hm is not None:
        datasets["h&m"] = ["--dataset", "hm-fashion", "--root", str(args.hm)]
    datasets = datasets or {"synthetic": []}
    rows = [
        "| data | augmentation | sparse NDCG@10 | vs none | dense NDCG@10 | vs none | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, data_flags in datasets.items():
        baseline: tuple[float, float] | None = None
        for name in AUGMENTERS:
            flags = ["--method", args.method, *data_flags, "--seeds", args.seeds, "--augment", name]
            flags += ["--sparse-fraction", "0.5", "--sparse-max", "5"]
            summary, command = run_cell(flags, args.out / label.replace("&", "") / name, args.threads)
            (sparse, sparse_std), (dense, dense_std) = bucket(summary, "sparse"), bucket(summary, "dense")
            baseline = baseline or (sparse, dense)
            rows.append(
                f"| {label} | {name} | {sparse:.4f} ± {sparse_std:.4f} | {100 * (sparse / baseline[0] - 1):+.1f}% "
                f"| {dense:.4f} ± {dense_std:.4f} | {100 * (dense / baseline[1] - 1):+.1f}% | `{command}` |"
            )
            print(rows[-1], flush=True)
            (args.out / "augmentation.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
