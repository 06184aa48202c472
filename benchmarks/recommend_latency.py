"""Latency of the app's Recommend handler for one user on an ML-100K model; prints p50/p95 as JSON.

The handler is what the Recommend button calls (score every item, mask training items, top-K,
history and result tiles, router weights), minus Gradio's serialisation. The run is trained
first when missing (research-only data under ../shared/data; nothing is copied into the repo):

    .venv/bin/python benchmarks/recommend_latency.py --run runs/ml100k-app --users 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BUDGET_MS = 200.0


def train_command(run: Path, method: str, rounds: int) -> list[str]:
    posters = DATA / "ml-100k-posters-tmdb"
    return [
        *(sys.executable, "-m", "mmfedrec", "--threads", "1", "train", "--method", method),
        *("--dataset", "movielens-100k", "--root", str(DATA / "ml-100k")),
        *("--items-table", str(posters / "items.csv"), "--image-dir", str(posters / "posters")),
        *("--rounds", str(rounds), "--quiet", "--out", str(run)),
    ]


def time_http(context, users: np.ndarray, k: int) -> dict[str, float]:
    """p50/p95 of POST /gradio_api/call/on_recommend + reading its event stream, against the app in-process."""
    import urllib.request

    from mmfedrec.app.ui import build_demo, launch_options

    demo = build_demo(context)
    demo.launch(prevent_thread_lock=True, quiet=True, ssr_mode=False, **launch_options(context))
    url = demo.local_url.rstrip("/") + "/gradio_api/call/on_recommend"
    try:
        timings = []
        for user in users:
            started = time.perf_counter()
            payload = json.dumps({"data": [int(user), k, False]}).encode()
            request = urllib.request.Request(url, payload, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request) as response:
                event_id = json.loads(response.read())["event_id"]
            with urllib.request.urlopen(f"{url}/{event_id}") as response:
                body = response.read().decode()
            timings.append((time.perf_counter() - started) * 1000)
            assert "event: complete" in body, body[:200]
    finally:
        demo.close(verbose=False)
    return {
        "p50_ms": round(float(np.percentile(timings, 50)), 1),
        "p95_ms": round(float(np.percentile(timings, 95)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "ml100k-app")
    parser.add_argument("--method", default="fedavg-mf", help="when training the run")
    parser.add_argument("--rounds", type=int, default=10, help="when training the run")
    parser.add_argument("--users", type=int, default=100, help="users timed (the first N by id)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--http", action="store_true", help="also time the full HTTP round trip through Gradio")
    args = parser.parse_args(argv)

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    if not (args.run / "model.safetensors").is_file():
        if not (DATA / "ml-100k" / "u.data").is_file():
            print(f"ML-100K not found under {DATA}", file=sys.stderr)
            return 2
        subprocess.run(train_command(args.run, args.method, args.rounds), check=True, cwd=ROOT)

    from mmfedrec.app import handlers
    from mmfedrec.app.context import load_context

    started = time.perf_counter()
    context = load_context(args.run)
    load_seconds = time.perf_counter() - started
    users = context.user_ids[: args.users]
    handlers.recommend(context, int(users[0]), args.k)  # warm-up: first placeholder tiles, allocator
    timings = []
    for user in users:
        started = time.perf_counter()
        view = handlers.recommend(context, int(user), args.k)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(view.recommendations) == args.k, view.message
    timings_ms = np.asarray(timings)
    result = {
        "run": str(args.run),
        "method": context.run.method.name,
        "dataset": context.run.config.data.dataset,
        "n_users": context.run.split.n_users,
        "n_items": context.run.split.n_items,
        "users_timed": len(timings),
        "k": args.k,
        "threads": args.threads,
        "load_seconds": round(load_seconds, 2),
        "p50_ms": round(float(np.percentile(timings_ms, 50)), 3),
        "p95_ms": round(float(np.percentile(timings_ms, 95)), 3),
        "max_ms": round(float(timings_ms.max()), 3),
        "budget_ms": BUDGET_MS,
    }
    result["within_budget"] = result["p95_ms"] < BUDGET_MS
    if args.http:
        result["http"] = time_http(context, users, args.k)
    print(json.dumps(result, indent=2))
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
