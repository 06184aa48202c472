"""Every method at its defaults and at one equal tuning budget, on every dataset and split.

    python benchmarks/generalization.py --ml ../shared/data/ml-100k --hm ../shared/data/hm-fashion-sample \
        --seeds 0,1,2 --rounds 40 --trials 20 --out runs/bench-generalization

For each dataset (synthetic; ML-100K split by time; ML-100K split at random; the H&M sample by
time) and method: a run at the defaults, then `mmfedrec tune` with the same number of trials for
every method (validation only, first seed), then the best configuration over all seeds. Writes
<out>/generalization.md: test HR@10 / NDCG@10 (99 sampled negatives) and full Recall@20 /
NDCG@20, mean ± std over seeds, with the seconds per round and each cell's command. A cell whose
summary.json exists is read back, so a stopped benchmark resumes.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from train_runs import cell, run_cell

METHODS = ("popularity", "fedavg-mf", "fedncf", "pfedrec", "ours")


def datasets(ml: Path | None, hm: Path | None) -> dict[str, list[str]]:
    """Dataset label -> its flags; the real ones only where their folder was given."""
    found = {"synthetic": []}
    if ml is not None:
        posters = ml.parent / "ml-100k-posters-tmdb"
        ml_flags = ["--dataset", "movielens-100k", "--root", str(ml)]
        if posters.is_dir():
            ml_flags += ["--items-table", str(posters / "items.csv"), "--image-dir", str(posters / "posters")]
        found["ml-100k time"] = ml_flags
        found["ml-100k random"] = [*ml_flags, "--split", "random"]
    if hm is not None:
        found["h&m time"] = ["--dataset", "hm-fashion", "--root", str(hm)]
    return found


def tune(flags: list[str], out: Path, trials: int, threads: int) -> tuple[Path, str]:
    """`mmfedrec tune` into `out` (resumes a stopped study); (best.toml, the command)."""
    command = ["mmfedrec", "--threads", str(threads), "tune", *flags, "--trials", str(trials), "--quiet"]
    command += ["--out", str(out)]
    if not (out / "best.toml").exists() or trials > _trials_done(out):
        subprocess.run([sys.executable, "-m", *command], check=True, stdout=subprocess.DEVNULL)
    return out / "best.toml", shlex.join(command)


def _trials_done(out: Path) -> int:
    path = out / "trials.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml", type=Path, help="the ML-100K folder (posters beside it are used when present)")
    parser.add_argument("--hm", type=Path, help="the H&M sample folder")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--datasets", default="", help='only these labels, comma-separated (e.g. "ml-100k time")')
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--trials", type=int, default=20, help="tuning trials per method (0: defaults only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-generalization"))
    args = parser.parse_args()

    rows = [
        "| data | method | defaults HR@10 | defaults NDCG@10 | tuned HR@10 | tuned NDCG@10 | tuned Recall@20 | "
        "tuned NDCG@20 | s/round | commands |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wanted = {d.strip() for d in args.datasets.split(",") if d.strip()}
    for label, data_flags in datasets(args.ml, args.hm).items():
        if wanted and label not in wanted:
            continue
        for method in filter(None, args.methods.split(",")):
            folder = args.out / label.replace(" ", "-").replace("&", "") / method
            base = ["--method", method, *data_flags, "--rounds", str(args.rounds), "--eval-every", "5"]
            defaults, default_command = run_cell([*base, "--seeds", args.seeds], folder / "defaults", args.threads)
            tuned, commands = defaults, [default_command]
            if args.trials and method != "popularity":
                best, tune_command = tune(base, folder / "tune", args.trials, args.threads)
                tuned, tuned_command = run_cell(
                    ["--config", str(best), "--seeds", args.seeds], folder / "tuned", args.threads
                )
                commands += [tune_command, tuned_command]
            cells = [cell(defaults, "sampled", "hr@10"), cell(defaults, "sampled", "ndcg@10")]
            cells += [cell(tuned, "sampled", "hr@10"), cell(tuned, "sampled", "ndcg@10")]
            cells += [cell(tuned, "full", "recall@20"), cell(tuned, "full", "ndcg@20")]
            seconds = tuned["timing"]["sec_per_round"]
            quoted = "; ".join(f"`{c}`" for c in commands)
            rows.append(f"| {label} | {method} | " + " | ".join(cells) + f" | {seconds:.3f} | {quoted} |")
            print(rows[-1], flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "generalization.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
