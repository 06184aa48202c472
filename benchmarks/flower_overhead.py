"""What does running on Flower cost per round, against the in-process engine, for the same workload?

    .venv/bin/python benchmarks/flower_overhead.py --json

Engines, all training the same users with the same seed (they reach the same model):
- inprocess: `Simulation.run_round`, all users in padded chunks;
- flower-inprocess: the ServerApp's strategy + ClientApps in one process (InProcessGrid): the
  cost of Flower's records and our per-silo packing, without network or processes;
- flower-sim: Simulation Engine (SuperLink --simulation, Ray, 1 CPU per virtual SuperNode);
- flower-deploy: Deployment Engine (SuperLink + one flower-supernode per silo + flwr run).
A round's time is the train phase (send model, local training, replies, aggregation); evaluation
is reported apart. `startup_seconds` is everything else in a run (processes, Ray, imports, the
final test), `total_seconds` the whole run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
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


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--method", default="ours-id-only")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2, help="SuperNodes (silos)")
    parser.add_argument(
        "--engines", nargs="+", default=["inprocess", "flower-inprocess", "flower-sim", "flower-deploy"]
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
    )
    split = flower_split(config)
    results = []
    for engine in args.engines:
        started = time.perf_counter()
        if engine == "inprocess":
            outcome = train_seed(method_spec(config.method), split, None, config, config.seeds[0])
        elif engine == "flower-inprocess":
            outcome, _ = run_inprocess(config, args.nodes)
        else:
            outcome = run_flower(config, engine, FlowerOptions(num_nodes=args.nodes, timeout=900))
        rounds = [entry["seconds"] for entry in outcome.curve]
        evals = [entry["eval_seconds"] for entry in outcome.curve if "eval_seconds" in entry]
        ndcg = outcome.test["sampled"]["ndcg@10"]
        result = summarize(engine, rounds, evals, time.perf_counter() - started)
        result["test_sampled_ndcg@10"] = ndcg
        results.append(result)
        print(f"{engine}: {result}", file=sys.stderr)
    base = results[0]["median_round_seconds_after_first"] if results[0]["engine"] == "inprocess" else None
    for result in results:
        if base:
            result["round_overhead_x"] = round(result["median_round_seconds_after_first"] / base, 1)
    payload = {
        "workload": {
            "method": args.method,
            "users": split.n_users,
            "items": split.n_items,
            "rounds": args.rounds,
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
