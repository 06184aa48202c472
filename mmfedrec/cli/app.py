"""`mmfedrec app`: serve a trained run as a Gradio app (trains the embedded default when no run is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfedrec.errors import MmfedrecError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="serve a trained run as a Gradio app", description=__doc__)
    add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", type=Path, help="run folder (default: train the embedded default into runs/app-default)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--k", type=int, default=10, help="recommendations shown by default")
    parser.add_argument("--cache-dir", type=Path, help="dataset/feature cache (default: the run's own)")
    default = parser.add_argument_group("default run (without --run)")
    default.add_argument("--default-method", default="ours-id-only", choices=("ours-id-only", "ours"))
    default.add_argument("--default-rounds", type=int, default=5)
    default.add_argument("--retrain", action="store_true", help="train the default run again even if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from mmfedrec.app.training import DEFAULT_RUN, ensure_default_run

    if not 1 <= args.port <= 65535:
        raise MmfedrecError(f"--port must lie in 1..65535, got {args.port}")
    if not 1 <= args.k <= 50:
        raise MmfedrecError(f"--k must lie in 1..50, got {args.k}")
    cache_dir = args.cache_dir
    folder = args.run
    if folder is None:
        print(f"mmfedrec app: training the default model into {DEFAULT_RUN} ...", file=sys.stderr, flush=True)
        folder = ensure_default_run(
            DEFAULT_RUN,
            cache_dir=cache_dir or Path(".cache/mmfedrec"),
            method=args.default_method,
            rounds=args.default_rounds,
            retrain=args.retrain,
        )
    from mmfedrec.app.context import load_context
    from mmfedrec.app.ui import build_demo, launch_options

    context = load_context(folder, cache_dir, k=args.k)
    demo = build_demo(context)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            **launch_options(context),
        )
    except OSError as error:
        raise MmfedrecError(f"cannot serve on {args.host}:{args.port}: {error}") from None
    print(f"mmfedrec app: serving {folder} at {demo.local_url}", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close(verbose=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m mmfedrec.cli.app ...`: the subcommand on its own (same runtime setup and errors as `mmfedrec`)."""
    import sys

    from mmfedrec.runtime import configure_runtime

    parser = argparse.ArgumentParser(prog="python -m mmfedrec.cli.app", description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    add_options(parser)
    args = parser.parse_args(argv)
    configure_runtime(args.threads)
    try:
        return int(args.func(args) or 0)
    except MmfedrecError as error:
        print(f"mmfedrec: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
