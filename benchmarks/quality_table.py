"""Every method and ablation under one evaluator: the quality table of the federation issue.

    python benchmarks/quality_table.py --root ../shared/data/ml-100k \
        --posters ../shared/data/ml-100k-posters-tmdb --seeds 0,1,2 --rounds 60 --out runs/bench-quality

Writes <out>/quality.md: test HR@10/NDCG@10 (99 sampled negatives) and Recall@20/NDCG@20 (full
ranking), mean ± std over seeds, at the round chosen on validation, each row with its command.
`--variants "LABEL=METHOD FLAGS...;..."` adds rows with extra training flags, e.g.
`"ours-int8=ours --compress-bits 8;pfedrec-dual-pfedrec-negatives=pfedrec-dual --negatives-avoid-heldout"`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_runs import cell, dataset_args, train

METHODS = (
    "popularity",
    "central-mf",
    "central-ncf",
    "central-ours",
    "local",
    "fedavg-mf",
    "fedncf",
    "pfedrec",
    "pfedrec-dual",
    "ours",
    "ours-no-image",
    "ours-no-text",
    "ours-id-only",
    "ours-no-moe",
    "ours-shared-gate",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--posters", type=Path)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--variants", default="", help='"LABEL=METHOD FLAGS...;...": rows with extra flags')
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--lr", default="0.5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    args = parser.parse_args()

    rows = [
        "| method | sampled HR@10 | sampled NDCG@10 | full Recall@20 | full NDCG@20 | upload B/client/round | command |",
        "|---|---|---|---|---|---|---|",
    ]
    rows_to_run = [(method, method, []) for method in args.methods.split(",") if method]
    for variant in filter(None, args.variants.split(";")):
        label, _, spec = variant.partition("=")
        method, *extra = spec.split()
        rows_to_run.append((label.strip(), method, extra))
    for label, method, extra in rows_to_run:
        flags = ["--method", method, *dataset_args(args.root, args.posters), "--seeds", args.seeds]
        flags += ["--rounds", str(args.rounds), "--eval-every", "5", "--lr", args.lr, *extra]
        summary, command = train(flags, args.out / label, args.threads)
        cells = [cell(summary, "sampled", "hr@10"), cell(summary, "sampled", "ndcg@10")]
        cells += [cell(summary, "full", "recall@20"), cell(summary, "full", "ndcg@20")]
        upload = summary["comm"]["upload_bytes_per_client_round"]
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {upload:,.0f} | `{command}` |")
        print(rows[-1], flush=True)
        (args.out / "quality.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
