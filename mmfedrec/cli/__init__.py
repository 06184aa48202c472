"""The `mmfedrec` command: one entry point, a subcommand per job.

Each subcommand lives in its own module exposing `add_parser(subparsers)` (which sets
`func`). Modules import heavy stacks only inside their handlers, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from mmfedrec.cli.options import int_in
from mmfedrec.errors import MmfedrecError

SUBCOMMAND_MODULES = (
    "mmfedrec.cli.data",
    "mmfedrec.cli.train",
    "mmfedrec.cli.tune",
    "mmfedrec.cli.run",
    "mmfedrec.cli.encode",
    "mmfedrec.cli.synth",
    "mmfedrec.cli.app",
)


class UsageError(MmfedrecError):
    """A bad command line: one line and a pointer to --help, not a page of usage."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mmfedrec", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int_in(1, 1024), default=None, help="torch threads (default: 1 under CI, else all cores)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, configure the runtime once, run the subcommand; bad input exits 2 with one line."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"mmfedrec: error: {error}", file=sys.stderr)
        return 2
    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    logging.basicConfig(level=logging.WARNING, format="mmfedrec: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MmfedrecError as error:
        print(f"mmfedrec: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmfedrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
