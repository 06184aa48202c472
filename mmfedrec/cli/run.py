"""`mmfedrec run`: the main job. Trains ours and the baselines on the embedded synthetic
dataset (or any dataset given), end to end, and prints a comparison table."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfedrec.cli.options import add_dataset_options
from mmfedrec.cli.train import add_training_options, experiment_config

DEFAULT_METHODS = "popularity,central-mf,fedavg-mf,fedncf,pfedrec,ours-id-only,ours"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="the main job: ours vs baselines, end to end", description=__doc__)
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated methods")
    parser.add_argument("--out", type=Path, default=Path("runs/main"))
    add_dataset_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run, rounds=20)


def run(args: argparse.Namespace) -> int:
    from mmfedrec.evaluation.report import markdown_table, write_report
    from mmfedrec.experiment import run_experiment
    from mmfedrec.federation.methods import method_spec

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in methods:
        method_spec(name)  # fail before any training on a typo
    summaries, curves = [], {}
    for name in methods:
        print(f"== {name}", flush=True)
        config = experiment_config(args, name, args.out / name)
        summaries.append(run_experiment(config))
        curves[name] = [line for line in _curve(args.out / name)]
    report = write_report(args.out, summaries, curves, f"mmfedrec run on {args.dataset}")
    print()
    print(markdown_table(summaries))
    print(f"\nreport: {report}")
    return 0


def _curve(run_dir: Path) -> list[dict]:
    import json

    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
