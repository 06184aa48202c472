"""Latency of the app's Recommend handler for one user on an ML-100K model; prints p50/p95 as JSON.

The handler is what the Recommend button calls (score every item, mask training items, top-K,
history and result tiles, router weights), minus Gradio's serialisation. The run is trained
first when missing (research-only data under ../shared/data; nothing is copied into the repo):

    .venv/bin/python benchmarks/recommend_latency.py --run runs/ml100k-app --users 100

`--concurrency N` serves the run with `mmfedrec app` in a subprocess and has N threads, each
with its own `gradio_client.Client`, call the Recommend endpoint `--requests` times (the load
generator shares the machine with the server, as a demo's users would not):

    .venv/bin/python benchmarks/recommend_latency.py --run runs/app-synthetic --dataset synthetic \
        --concurrency 16 --requests 40
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BUDGET_MS = 200.0
CONCURRENT_BUDGET_MS = 2000.0  # p95 of 16 concurrent users on the synthetic run


def train_command(run: Path, method: str, rounds: int, dataset: str = "movielens-100k") -> list[str]:
    command = [sys.executable, "-m", "mmfedrec", "--threads", "1", "train", "--method", method]
    if dataset != "synthetic":
        posters = DATA / "ml-100k-posters-tmdb"
        command += ["--dataset", dataset, "--root", str(DATA / "ml-100k")]
        command += ["--items-table", str(posters / "items.csv"), "--image-dir", str(posters / "posters")]
    return [*command, "--rounds", str(rounds), "--quiet", "--out", str(run)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), to tell the server's work from the load generator's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def served(run: Path, threads: int):
    """`mmfedrec app --run RUN` on a free port in a subprocess; yields its URL and pid, and stops it afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mmfedrec", "--threads", str(threads), "app", "--run", str(run)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MMFEDREC_THREADS": str(threads), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        for line in process.stdout:
            match = re.search(r"serving .* at (http://\S+)", line)
            if match:
                break
        else:
            raise RuntimeError(f"the app exited with {process.wait()} before serving")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # drain the log
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def time_concurrent(
    url: str, pid: int, users: np.ndarray, k: int, concurrency: int, requests: int, verify_ssl: bool = False
) -> dict[str, float]:
    """Throughput and p50/p95 of `concurrency` API clients, each calling /on_recommend `requests` times.

    Each client downloads the images of every answer, as gradio_client does by default. With
    `verify_ssl` (its default) it also builds a TLS context with the CA bundle for every HTTP
    request, plain HTTP included: tens of ms of the load generator's CPU per request, taken from
    the server it shares the cores with.
    """
    from gradio_client import Client

    options = {"verbose": False, "analytics_enabled": False, "ssl_verify": verify_ssl}
    clients = [Client(url, **options) for _ in range(concurrency)]
    for client in clients:  # warm-up: one call each (connections, first tiles)
        client.predict(int(users[0]), k, False, api_name="/on_recommend")
    timings: list[float] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for j in range(requests):
            user = users[(index * requests + j) % len(users)]
            started = time.perf_counter()
            # an int: the id form that versions before the text ids accept too, so they can be compared
            message = clients[index].predict(int(user), k, False, api_name="/on_recommend")[0]
            elapsed = time.perf_counter() - started
            assert message.startswith(f"User **{user}**"), message
            with lock:
                timings.append(elapsed * 1000)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    started, server_started, client_started = time.perf_counter(), cpu_seconds(pid), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    server_ms, client_ms = (cpu_seconds(pid) - server_started) * 1000, (time.process_time() - client_started) * 1000
    assert len(timings) == concurrency * requests, "some calls failed (their tracebacks are above)"
    return {
        "concurrency": concurrency,
        "requests": len(timings),
        "seconds": round(seconds, 1),
        "requests_per_second": round(len(timings) / seconds, 2),
        "p50_ms": round(float(np.percentile(timings, 50)), 1),
        "p95_ms": round(float(np.percentile(timings, 95)), 1),
        "max_ms": round(float(np.max(timings)), 1),
        "server_cpu_ms_per_request": round(server_ms / len(timings), 1),
        "client_cpu_ms_per_request": round(client_ms / len(timings), 1),
    }


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
    parser.add_argument("--dataset", default="movielens-100k", choices=("movielens-100k", "synthetic"))
    parser.add_argument("--concurrency", type=int, help="time N concurrent API clients of a served app instead")
    parser.add_argument("--requests", type=int, default=40, help="recommendations per client (--concurrency)")
    parser.add_argument("--verify-ssl", action="store_true", help="clients build a TLS context per request")
    args = parser.parse_args(argv)

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    if not (args.run / "model.safetensors").is_file():
        if args.dataset != "synthetic" and not (DATA / "ml-100k" / "u.data").is_file():
            print(f"ML-100K not found under {DATA}", file=sys.stderr)
            return 2
        subprocess.run(train_command(args.run, args.method, args.rounds, args.dataset), check=True, cwd=ROOT)
    if args.concurrency:
        from mmfedrec.app.run_loader import load_run

        users = load_run(args.run).split.user_ids
        with served(args.run, args.threads) as (url, pid):
            result = time_concurrent(url, pid, users, args.k, args.concurrency, args.requests, args.verify_ssl)
        result = {"run": str(args.run), "k": args.k, "threads": args.threads, "verify_ssl": args.verify_ssl, **result}
        print(json.dumps(result, indent=2))
        return 0 if result["p95_ms"] <= CONCURRENT_BUDGET_MS else 1

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
