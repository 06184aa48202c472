"""What each modality is worth, on items clients have held (warm) and on items nobody has (cold).

    python benchmarks/modality_table.py --ml ../shared/data/ml-100k --hm ../shared/data/hm-fashion-sample \
        --hm-image-checkpoint .cache/mmfedrec/encoders/hm-fashion-tiny-aligned.safetensors \
        --seeds 0,1,2 --rounds 40 --out runs/bench-modality

For each dataset (ML-100K and the H&M sample, time split) and method (ours, no image, no text, ID
only): one run with `--cold-items 0.1` (a seeded tenth of the items loses every training event)
and one without. Writes <out>/modality.md: the cold and warm test buckets (HR@10 / NDCG@10, 99
sampled negatives; chance HR@10 is 0.10), the run without cold items (all test users and its warm
bucket), and the warm bucket's change between the two. Finished cells are read back, so a stopped
benchmark resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generalization import datasets
from train_runs import run_cell, write_table

METHODS = ("ours", "ours-no-image", "ours-no-text", "ours-id-only")
COLD_FRACTION = "0.1"


def bucket(summary: dict, name: str) -> str:
    """'HR@10 / NDCG@10 (users)' of one test bucket ("all": every test user)."""
    found = summary["test"] if name == "all" else summary["buckets"][name]
    users = summary["test_users"] if name == "all" else found["users"]
    sampled = found["sampled"]
    return f"{sampled['hr@10']:.4f} / {sampled['ndcg@10']:.4f} ({users})"


def change(cold_run: dict, plain_run: dict) -> str:
    """The warm bucket's relative NDCG@10 change against the warm bucket of the run without cold
    items (on H&M most test items are never bought before: they are cold in both runs)."""
    warm, plain = (run["buckets"]["warm"]["sampled"]["ndcg@10"] for run in (cold_run, plain_run))
    return f"{100 * (warm / plain - 1):+.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml", type=Path, help="the ml-100k folder (its TMDB posters beside it)")
    parser.add_argument("--hm", type=Path, help="the H&M sample folder")
    parser.add_argument("--hm-image-checkpoint", type=Path, help="an image tower trained by `mmfedrec encode`")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-modality"))
    args = parser.parse_args()
    found = {label: flags for label, flags in datasets(args.ml, args.hm).items() if label.endswith("time")}
    if not found:
        parser.error("give --ml and/or --hm")
    if args.hm_image_checkpoint is not None and "h&m time" in found:
        found["h&m time"] = [*found["h&m time"], "--image-checkpoint", str(args.hm_image_checkpoint.absolute())]
    lines = [
        "| data | method | cold HR@10 / NDCG@10 (users) | warm, same run | without cold items: all | its warm | "
        "warm change |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    commands = []
    for label, data_flags in found.items():
        for method in args.methods.split(","):
            flags = [*data_flags, "--method", method, "--seeds", args.seeds, "--rounds", str(args.rounds)]
            slug = f"{label.replace(' ', '-').replace('&', '')}-{method}"
            cold, command = run_cell([*flags, "--cold-items", COLD_FRACTION], args.out / f"{slug}-cold", args.threads)
            plain, _ = run_cell(flags, args.out / f"{slug}-plain", args.threads)
            commands.append(command)
            cells = [bucket(cold, "cold"), bucket(cold, "warm"), bucket(plain, "all"), bucket(plain, "warm")]
            cells.append(change(cold, plain))
            lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    write_table(args.out / "modality.md", lines, commands, "Commands (each also without `--cold-items`):")


if __name__ == "__main__":
    main()
