"""What does running on Flower cost per round, against the in-process engine, for the same workload?

    .venv/bin/python benchmarks/flower_overhead.py --json

Engines, all training the same users with the same seed (they reach the same model):
- inprocess: `Simulation.run_round`, all users in padded chunks;
- flower-inprocess: the ServerApp's strategy + ClientApps in one process (InProcessGrid): the
  cost of Flower's records and our per-silo packing, without network or processes;
- flower-sim: Simulation Engine (SuperLink --simulation, Ray, 1 CPU per virtual SuperNode);
- flower-deploy: Deployment Engine (SuperLink + one flower-supernode per silo + flwr run), each
  SuperNode's ClientApps run by one warm runner (`mmfedrec.federation.flower.warm_runner`);
- flower-deploy-cold: the same with Flower's stock ClientApp isolation (a process per message);
- flower-empty, flower-empty-warm: Flower's floor on the same nodes: an app whose ClientApp
  replies at once (`benchmarks/flower_floor/`), stock and warm, its message as large as ours.
A round's time is the train phase (send model, local training, replies, aggregation); evaluation
is reported apart. `startup_seconds` is everything else in a run (processes, Ray, imports, the
final test), `total_seconds` the whole run. Deployment runs report each node's peak memory
(SuperNode, its runner or ClientApp processes, summed), sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from mmfedrec.runtime import configure_runtime


def summarize(engine: str, round_seconds: list[float], eval_seconds: list[float], total: float) -> dict:
    later = round_seconds[1:] or round_seconds
    return {
        "engine": engine,
        "round_seconds": [round(s, 4) for s in round_seconds],
        "first_round_seconds": round(round_seconds[0], 4),
        "median_round_seconds_after_first": round(statistics.median(later), 4),
        "median_eval_seconds": round(statistics.median(eval_seconds), 4) if eval_seconds else None,
        "total_seconds": round(total, 2),
        "startup_seconds": round(total - sum(round_seconds) - sum(eval_seconds), 2),
    }


FLOOR_APP = Path(__file__).resolve().parent / "flower_floor"


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (0 once it is gone)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        try:
            status = (proc / "status").read_text()
            total += next(float(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
            for task in (proc / "task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


class NodeMemory:
    """Peak memory of each node (processes named supernode-i and runner-i) while a run goes on."""

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()

    def watch(self, group) -> None:
        def sample() -> None:
            while not self._stop.is_set():
                current: dict[str, float] = {}
                for name, process in list(group.processes.items()):
                    if name.startswith(("supernode-", "runner-")):
                        node = name.split("-", 1)[1]
                        current[node] = current.get(node, 0.0) + tree_rss_mb(process.pid)
                for node, mb in current.items():
                    self.peak[node] = max(self.peak.get(node, 0.0), mb)
                self._stop.wait(0.2)

        threading.Thread(target=sample, daemon=True).start()

    def report(self) -> dict[str, float]:
        self._stop.set()
        return {"peak_node_rss_mb_max": round(max(self.peak.values()), 1)} if self.peak else {}


def patch_supernodes(idle: float) -> None:
    """Start every SuperNode of this process's runs through `patched_supernode.py` (experiment)."""
    import os

    from mmfedrec.federation.flower import launcher

    os.environ["MMFEDREC_NODE_IDLE"] = str(idle)
    stock = launcher.supernode_command

    def patched(*args, **kwargs) -> list[str]:
        return [sys.executable, str(FLOOR_APP / "patched_supernode.py"), *stock(*args, **kwargs)[1:]]

    launcher.supernode_command = patched


def killer(after_round: int, name: str):
    """An `on_started` callback that SIGKILLs process `name` once round `after_round + 1` begins."""
    import signal

    def start(group) -> None:
        def watch() -> None:
            while f"[ROUND {after_round + 1}/" not in group.log("flwr-run"):
                time.sleep(0.1)
            group.kill(name, signal.SIGKILL)
            print(f"killed {name} as round {after_round + 1} began", file=sys.stderr)

        threading.Thread(target=watch, daemon=True).start()

    return start


def both(*callbacks):
    return lambda group: [callback(group) for callback in callbacks]


def download_floats(config, split) -> int:
    """Float32 values of one round's download of `config.method` (shared tensors and item table)."""
    import torch

    from mmfedrec.config.methods import method_spec
    from mmfedrec.federation.engines.runner import build_client_model, build_tower
    from mmfedrec.federation.models import initial_state

    method, seed = method_spec(config.method), config.seeds[0]
    shared, _ = initial_state(build_client_model(method, config, split), split.n_users, seed)
    with torch.no_grad():
        table = build_tower(method, split, None, config, seed)()
    return sum(t.numel() for t in shared.values()) + table.numel()


def run_floor(nodes: int, rounds: int, floats: int, warm: bool, memory: NodeMemory, reply_poll: float) -> list[float]:
    """Round seconds of the empty app on `nodes` SuperNodes (stock or warm ClientApps)."""
    import tomli_w

    from mmfedrec.federation.flower.launcher import (
        FlowerOptions,
        flower_processes,
        start_superlink,
        start_supernodes,
        submit_app,
    )

    options = FlowerOptions(num_nodes=nodes, warm=warm)
    with flower_processes(options) as (group, work):
        out = work / "floor.json"
        run_config = work / "floor-config.toml"
        settings = {"rounds": rounds, "nodes": nodes, "floats": floats, "reply_poll": reply_poll, "out": str(out)}
        run_config.write_text(tomli_w.dumps(settings))
        port = start_superlink(group, options, False, work / "flwr-home")
        start_supernodes(group, options, port)
        memory.watch(group)
        run = submit_app(group, options, FLOOR_APP, run_config)
        deadline = time.monotonic() + 600
        while not out.exists():
            if run.poll() is not None or time.monotonic() > deadline:
                time.sleep(1.0)
                if not out.exists():
                    raise RuntimeError(f"the floor app gave no result; log:\n{group.log('flwr-run')[-3000:]}")
            time.sleep(0.2)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--method", default="ours-id-only")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2, help="SuperNodes (silos)")
    parser.add_argument("--ml-100k", type=Path, help="train on this MovieLens-100K folder instead of synthetic data")
    parser.add_argument("--secure-agg", action="store_true", help="secure aggregation (SecAgg+ on Flower)")
    parser.add_argument("--reply-poll", type=float, default=0.0, help="flower.reply_poll (0 = flwr's 3 s)")
    parser.add_argument(
        "--node-idle",
        type=float,
        default=0.0,
        help="experiment: cap the SuperNodes' idle sleeps at this (flower_floor/patched_supernode.py)",
    )
    parser.add_argument("--kill-after-round", type=int, default=0, help="deploy: SIGKILL the last SuperNode then")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["inprocess", "flower-inprocess", "flower-sim", "flower-deploy", "flower-deploy-cold", "flower-empty"],
    )
    args = parser.parse_args(argv)
    configure_runtime(threads=1)

    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings
    from mmfedrec.config.methods import method_spec
    from mmfedrec.federation.engines.runner import train_seed
    from mmfedrec.federation.flower.launcher import FlowerOptions, run_flower, run_inprocess
    from mmfedrec.federation.flower.run_config import flower_split

    cache = Path(tempfile.mkdtemp(prefix="mmfedrec-bench-"))
    config = with_settings(
        RunConfig(),
        method=args.method,
        synthetic_users=args.users,
        synthetic_items=args.items,
        cache_dir=str(cache),
        rounds=args.rounds,
        min_nodes=args.nodes,
        secure_agg=args.secure_agg,
        reply_poll=args.reply_poll,
        **({"dataset": "movielens-100k", "root": str(args.ml_100k)} if args.ml_100k else {}),
    )
    split = flower_split(config)
    if args.node_idle > 0:
        patch_supernodes(args.node_idle)
    results = []
    model_floats = None
    for engine in args.engines:
        started = time.perf_counter()
        memory = NodeMemory()
        evals: list[float] = []
        ndcg = None
        if engine == "inprocess":
            outcome = train_seed(method_spec(config.method), split, None, config, config.seeds[0])
        elif engine == "flower-inprocess":
            outcome, _ = run_inprocess(config, args.nodes)
        elif engine in ("flower-empty", "flower-empty-warm"):
            model_floats = model_floats or download_floats(config, split)
            rounds = run_floor(args.nodes, args.rounds, model_floats, engine.endswith("warm"), memory, args.reply_poll)
        else:
            warm = engine != "flower-deploy-cold"
            options = FlowerOptions(num_nodes=args.nodes, timeout=900, warm=warm)
            on_started = memory.watch
            if args.kill_after_round and engine.startswith("flower-deploy"):
                on_started = both(memory.watch, killer(args.kill_after_round, f"supernode-{args.nodes - 1}"))
            outcome = run_flower(config, engine.removesuffix("-cold"), options, on_started=on_started)
        if engine not in ("flower-empty", "flower-empty-warm"):
            rounds = [entry["seconds"] for entry in outcome.curve]
            evals = [entry["eval_seconds"] for entry in outcome.curve if "eval_seconds" in entry]
            ndcg = outcome.test["sampled"]["ndcg@10"]
            lost = sorted({silo for entry in outcome.curve for silo in entry.get("lost_silos", [])})
        result = summarize(engine, rounds, evals, time.perf_counter() - started)
        if engine.startswith("flower-deploy") and args.kill_after_round:
            result["lost_silos"] = lost
            result["clients_per_round"] = [entry["clients"] for entry in outcome.curve]
        result |= memory.report()
        if ndcg is not None:
            result["test_sampled_ndcg@10"] = ndcg
        results.append(result)
        print(f"{engine}: {result}", file=sys.stderr)
    medians = {result["engine"]: result["median_round_seconds_after_first"] for result in results}
    for result in results:
        if "inprocess" in medians:
            result["round_overhead_x"] = round(result["median_round_seconds_after_first"] / medians["inprocess"], 1)
        if "flower-empty" in medians:
            result["x_flower_floor"] = round(result["median_round_seconds_after_first"] / medians["flower-empty"], 2)
    payload = {
        "workload": {
            "method": args.method,
            "data": str(args.ml_100k) if args.ml_100k else "synthetic",
            "users": split.n_users,
            "items": split.n_items,
            "rounds": args.rounds,
            "secure_agg": args.secure_agg,
            "reply_poll": args.reply_poll,
            "node_idle": args.node_idle,
            "nodes": args.nodes,
            "torch_threads": 1,
        },
        "results": results,
    }
    if args.json:
        print(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    main()
