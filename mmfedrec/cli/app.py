"""`mmfedrec app`: serve a trained run as a Gradio app (trains the embedded default when no run is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfedrec.cli.options import int_in
from mmfedrec.errors import MmfedrecError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="serve a trained run as a Gradio app", description=__doc__)
    parser.add_argument(
        "--run", type=Path, help="run folder (default: train the embedded default into runs/app-default)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int_in(1, 65535), default=7860)
    parser.add_argument("--k", type=int_in(1, 50), default=10, help="recommendations shown by default")
    parser.add_argument("--cache-dir", type=Path, help="dataset/feature cache (default: the run's own)")
    default = parser.add_argument_group("default run (without --run)")
    default.add_argument("--default-method", default="ours-id-only", choices=("ours-id-only", "ours"))
    default.add_argument("--default-rounds", type=int, default=5)
    default.add_argument("--retrain", action="store_true", help="train the default run again even if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from mmfedrec.app.training import DEFAULT_RUN, ensure_default_run

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
    except OSError:  # Gradio's own message points at its environment variable, not at our flag
        raise MmfedrecError(
            f"cannot serve on {args.host}:{args.port}: the port is in use or the address is not available; "
            "choose another with --port (or --host)"
        ) from None
    print(f"mmfedrec app: serving {folder} at {demo.local_url}", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close(verbose=False)
    return 0
