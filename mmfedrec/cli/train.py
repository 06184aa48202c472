"""`mmfedrec train`: train and evaluate one method over seeds into a run folder.

Every setting is a flag named after its field in the configuration tree (`mmfedrec.config`);
`--config FILE|RUN|NAME` starts from a TOML file, a run folder's config.json or a named config
that ships with the package, and the flags given override it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmfedrec.config.arguments import add_config_arguments, resolve_config


def add_config_file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE|RUN|NAME",
        help="start from a TOML file, a run folder (its config.json) or a named config (e.g. ml-100k); flags override it",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration as TOML and exit")
    parser.add_argument("--quiet", action="store_true", help="no per-round progress")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train and evaluate one method", description=__doc__)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<method>)")
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace the run that --out holds (else refused)")
    add_config_file_options(parser)
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfedrec.evaluation.report import markdown_table
    from mmfedrec.experiment import load_run_config, run_experiment

    if args.resume is not None:
        config, out = load_run_config(args.resume), args.resume
    else:
        config = resolve_config(args)
        out = args.out or Path("runs") / config.method
    if args.print_config:
        from mmfedrec.config.codec import to_toml

        sys.stdout.write(to_toml(config))
        return 0
    resume = args.resume is not None
    summary = run_experiment(config, out, progress=not args.quiet, resume=resume, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2) if args.json else markdown_table([summary]))
    if not args.json:
        print(f"\nwrote {out}/summary.json and {out}/report.md")
    return 0
