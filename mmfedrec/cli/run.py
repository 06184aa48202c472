"""`mmfedrec run`: the main job. Trains ours and the baselines on the embedded synthetic
dataset (or any dataset given), end to end, and prints a comparison table."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfedrec.cli.train import add_config_file_options
from mmfedrec.config.arguments import add_config_arguments, resolve_config
from mmfedrec.errors import MmfedrecError

DEFAULT_METHODS = "popularity,central-mf,fedavg-mf,fedncf,pfedrec,ours-id-only,ours"
RUN_DEFAULTS = {"train": {"rounds": 20}}  # the main job's own default: a short comparison


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="the main job: ours vs baselines, end to end", description=__doc__)
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated methods (default: {DEFAULT_METHODS})"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/main"), help="folder of the runs (default: runs/main)")
    parser.add_argument("--overwrite", action="store_true", help="replace the runs that --out holds (else refused)")
    add_config_file_options(parser)
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfedrec.evaluation.report import markdown_table, write_report
    from mmfedrec.experiment import run_experiment

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    configs = {name: resolve_config(args, RUN_DEFAULTS, method=name) for name in methods}  # every typo before training
    taken = [name for name in methods if (args.out / name / "config.json").is_file()]
    if taken and not args.overwrite and not args.print_config:
        raise MmfedrecError(
            f"--out {args.out} holds runs of {', '.join(taken)} already; pass --overwrite to replace them"
        )
    if args.print_config:
        import sys

        from mmfedrec.config.codec import to_toml

        sys.stdout.write(to_toml(configs[methods[0]]))
        return 0
    summaries, curves = [], {}
    for name, config in configs.items():
        print(f"== {name}", flush=True)
        summaries.append(run_experiment(config, args.out / name, progress=not args.quiet, overwrite=args.overwrite))
        curves[name] = _curve(args.out / name)
    dataset = configs[methods[0]].data.dataset
    report = write_report(args.out, summaries, curves, f"mmfedrec run on {dataset}")
    print()
    print(markdown_table(summaries))
    print(f"\nreport: {report}")
    return 0


def _curve(run_dir: Path) -> list[dict]:
    import json

    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
