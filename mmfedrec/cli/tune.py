"""`mmfedrec tune`: search a method's hyperparameters on validation (Optuna), resumably."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mmfedrec.cli.options import int_in
from mmfedrec.cli.train import add_config_file_options
from mmfedrec.config.arguments import add_config_arguments, resolve_config
from mmfedrec.tuning import TARGETS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="search hyperparameters on validation", description=__doc__)
    parser.add_argument(
        "--trials", type=int_in(1, 10_000), default=20, help="trials in the study, in all (default: 20)"
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=None, help="stop starting trials after this many seconds"
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="model",
        help="model: the method's settings, on every client's validation; augmentation: the augmenter's "
        "settings, on the made-sparse clients' validation (needs --augment and --sparse-fraction)",
    )
    parser.add_argument("--out", type=Path, help="study folder (default: runs/tune-<method>); rerun to resume")
    add_config_file_options(parser)
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    import sys

    from mmfedrec.config.codec import to_toml
    from mmfedrec.tuning import tune

    config = resolve_config(args)
    if args.print_config:
        sys.stdout.write(to_toml(config))
        return 0
    out = args.out or Path("runs") / f"tune-{config.method}"
    tune(config, out, args.trials, args.timeout, progress=not args.quiet, target=args.target)
    print(f"best configuration: {out / 'best.toml'} (train it with `mmfedrec train --config {out / 'best.toml'}`)")
    print(f"every trial: {out / 'trials.csv'}")
    return 0
