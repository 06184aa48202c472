"""Time one federated round: batched engine vs the per-client loop, same model, same examples.

Every client trains (1 local epoch, 4 negatives per positive). ML-100K when --root is given,
else synthetic data of the same shape (943 users, 1,682 items, ~100k events, long-tailed). The
two engines' rounds are interleaved, so that their ratio does not depend on when each ran.
Also times an ML-1M-sized synthetic round (6,040 users) and measures peak memory for a round
of 100,000 synthetic clients.

    python benchmarks/round_time.py --json [--root ../shared/data/ml-100k] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def random_split(n_users: int, n_items: int, mean_events: float, seed: int = 0):
    from mmfedrec.data.splits import leave_one_out
    from mmfedrec.data.types import make_interactions

    rng = np.random.default_rng(seed)
    counts = np.clip(rng.lognormal(np.log(mean_events) - 0.5, 1.0, n_users).astype(int), 20, n_items // 2)
    popularity = rng.zipf(1.3, n_items).astype(float)
    popularity /= popularity.sum()
    users, items = [], []
    for user, count in enumerate(counts):
        users.append(np.full(count, user))
        items.append(rng.choice(n_items, size=count, replace=False, p=popularity))
    frame = pd.DataFrame({"user_id": np.concatenate(users), "item_id": np.concatenate(items)})
    frame["timestamp"] = np.arange(len(frame))
    frame["rating"] = 1.0
    return leave_one_out(make_interactions(frame), seed=seed, n_negatives=99)


def random_features(item_ids: np.ndarray, seed: int = 0):
    from mmfedrec.encoders.features import ItemFeatures

    rng = np.random.default_rng(seed)
    text = rng.standard_normal((len(item_ids), 384)).astype(np.float32)
    image = rng.standard_normal((len(item_ids), 64)).astype(np.float32)
    mask = np.ones((len(item_ids), 2), dtype=bool)
    return ItemFeatures(item_ids, text, image, mask, {"image_weights": "random-features (benchmark)"})


def warm_trainer(split, features, engine: str, method: str = "ours", history: int = 0):
    """A trainer for one round per call, its first round (allocator, first touch) already run."""
    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings
    from mmfedrec.config.methods import method_spec
    from mmfedrec.federation.engines.runner import build_trainer

    config = with_settings(RunConfig(), method=method, engine="loop" if engine == "loop" else "sim", history=history)
    trainer = build_trainer(method_spec(method), split, features, config, seed=0)
    trainer.run_round(0)
    return trainer


def timed_round(trainer, round_index: int) -> float:
    started = time.perf_counter()
    trainer.run_round(round_index)
    return time.perf_counter() - started


def seconds_per_round(split, features, engine: str, rounds: int, method: str = "ours", history: int = 0) -> float:
    """Median seconds of `rounds` rounds: robust to another process stealing a core for a moment."""
    trainer = warm_trainer(split, features, engine, method, history)
    return statistics.median(timed_round(trainer, r) for r in range(1, rounds + 1))


def interleaved_seconds(
    split, features, rounds: int, loop_rounds: int, method: str, history: int
) -> tuple[float, float]:
    """Median seconds per round of the batched engine and of the per-client loop, their rounds
    interleaved (a loop round after every `rounds // loop_rounds` batched ones), so both engines
    meet the machine in the same state: this 2-core VM's speed drifts by up to 30 % over minutes."""
    batched = warm_trainer(split, features, "batched", method, history)
    loop = warm_trainer(split, features, "loop", method, history)
    per_loop_round = max(1, rounds // loop_rounds)
    batched_seconds, loop_seconds = [], []
    for round_index in range(1, rounds + 1):
        batched_seconds.append(timed_round(batched, round_index))
        if round_index % per_loop_round == 0 and len(loop_seconds) < loop_rounds:
            loop_seconds.append(timed_round(loop, len(loop_seconds) + 1))
    return statistics.median(batched_seconds), statistics.median(loop_seconds)


def peak_memory_child(n_users: int, threads: int, method: str, history: int) -> dict:
    """Run one round of `n_users` synthetic clients in a fresh process; report its peak RSS."""
    code = (
        "import sys, json, resource, time; sys.path.insert(0, 'benchmarks');"
        f"from mmfedrec.runtime import configure_runtime; configure_runtime({threads});"
        "from round_time import random_split, random_features, seconds_per_round;"
        f"split = random_split({n_users}, 3706, 30.0);"
        "features = random_features(split.item_ids);"
        f"t = seconds_per_round(split, features, 'batched', 1, {method!r}, {history});"
        "print(json.dumps({'sec_per_round': t, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="ML-100K folder (else synthetic data of its shape)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds of the batched engine (median)")
    parser.add_argument("--loop-rounds", type=int, default=3, help="timed rounds of the per-client loop (median)")
    parser.add_argument("--method", default="ours")
    parser.add_argument("--history", type=int, default=0, help="recent items that condition ours (mmfedrec --history)")
    parser.add_argument("--skip-large", action="store_true", help="skip the 6,040 and 100,000 client runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    if args.root:
        from mmfedrec.config import DataConfig
        from mmfedrec.data.registry import prepare_split

        split = prepare_split(DataConfig("movielens-100k", root=args.root), 0, use_cache=False)
    else:
        split = random_split(943, 1682, 106.0)
    features = random_features(split.item_ids)
    batched, loop = interleaved_seconds(split, features, args.rounds, args.loop_rounds, args.method, args.history)
    result = {
        "data": "movielens-100k" if args.root else "synthetic (ML-100K shape)",
        "method": args.method,
        "history": args.history,
        "threads": args.threads,
        "clients": int(split.n_users),
        "events": len(split.train_items),
        "batched_sec_per_round": round(batched, 4),
        "loop_sec_per_round": round(loop, 4),
        "ratio": round(loop / batched, 1),
    }
    if not args.skip_large:
        ml1m = random_split(6040, 3706, 150.0)
        result["ml1m_shape_clients"] = 6040
        result["ml1m_shape_batched_sec_per_round"] = round(
            seconds_per_round(ml1m, random_features(ml1m.item_ids), "batched", 1, args.method, args.history), 4
        )
        large = peak_memory_child(100_000, args.threads, args.method, args.history)
        result["clients_100k_sec_per_round"] = round(large["sec_per_round"], 2)
        result["clients_100k_peak_rss_mb"] = round(large["peak_rss_mb"])
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
