"""Time federated denoiser training and sparse-client sampling on ML-100K-sized data.

    .venv/bin/python benchmarks/diffusion_time.py --json

Reads /work/shared/data/ml-100k/u.data when present (943 users x 1682 items), else a seeded
random matrix of that shape; makes 20% of evaluated users sparse (5 most recent training events).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.data.splits import Split, leave_one_out
from mmfedrec.data.types import Interactions
from mmfedrec.runtime import configure_runtime

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"


def load_interactions(seed: int = 0) -> tuple[Interactions, str]:
    """ML-100K events when the file exists, else a random 943 x 1682 matrix with about 6% density."""
    if ML100K.exists():
        frame = pd.read_csv(ML100K, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
        return Interactions(frame[["user_id", "item_id", "timestamp", "rating"]]), "ml-100k"
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((943, 1682)) < 0.063)
    frame = pd.DataFrame(
        {"user_id": users, "item_id": items, "timestamp": rng.integers(0, 10**6, len(users)), "rating": 1.0}
    )
    return Interactions(frame), "synthetic-943x1682"


def sparse_protocol(seed: int = 0, fraction: float = 0.2, max_train: int = 5) -> tuple[Split, np.ndarray, str]:
    """The leave-one-out split with a seeded fraction of users cut to `max_train` training events."""
    from mmfedrec.generators import make_sparse

    interactions, source = load_interactions(seed)
    split, sparse = make_sparse(leave_one_out(interactions, seed=seed), fraction, max_train, seed)
    return split, sparse, source


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    configure_runtime(threads=args.threads)
    import torch

    from mmfedrec.generators import (
        AugmentationPolicy,
        DiffusionAugmenter,
        DiffusionAugmenterConfig,
        FederatedDenoiserConfig,
        train_federated,
    )
    from mmfedrec.generators.policy import sparse_users
    from mmfedrec.generators.profiles import ProfileSpace, training_histories
    from mmfedrec.generators.scheduling import training_scheduler

    split, _, source = sparse_protocol()
    policy = AugmentationPolicy(sparse_max=5, n_pseudo=10)
    augmenter = DiffusionAugmenter(DiffusionAugmenterConfig(federated=FederatedDenoiserConfig(rounds=args.rounds)))
    start = time.perf_counter()
    augmenter.fit(split, policy)
    train_s = time.perf_counter() - start
    dense = int((split.train_counts() > policy.sparse_max).sum())

    sparse = sparse_users(split, policy)
    start = time.perf_counter()
    pseudo = augmenter.augment(split, policy)
    sample_s = time.perf_counter() - start

    # The full loop: 20 DDIM steps from pure noise for every sparse client.
    multi_step = DiffusionAugmenter(
        replace(augmenter.config, num_inference_steps=20), synthesizer=augmenter.synthesizer
    )
    start = time.perf_counter()
    multi_step.scores(split, sparse)
    sample_20_s = time.perf_counter() - start

    # One DP round (per-client clipping + noise materializes per-client updates): the slow path.
    dense_users = np.flatnonzero(split.train_counts() > policy.sparse_max)[:200]
    histories = training_histories(split, dense_users)
    denoiser = augmenter.synthesizer.denoiser
    dp_config = FederatedDenoiserConfig(rounds=1, clip_norm=1.0, noise_multiplier=1.0)
    start = time.perf_counter()
    train_federated(denoiser, training_scheduler(), ProfileSpace(split.n_items), histories, histories.sum(1), dp_config)
    dp_round_s = time.perf_counter() - start

    result = {
        "data": source,
        "users": split.n_users,
        "items": split.n_items,
        "threads": torch.get_num_threads(),
        "dense_clients_per_round": dense,
        "rounds": args.rounds,
        "train_s": round(train_s, 2),
        "train_s_per_round": round(train_s / args.rounds, 4),
        "final_round_loss": round(augmenter.training_losses[-1], 4),
        "first_round_loss": round(augmenter.training_losses[0], 4),
        "sparse_clients": len(sparse),
        "sampling_steps": int(augmenter.config.num_inference_steps * augmenter.config.strength),
        "sample_s": round(sample_s, 3),
        "pseudo_interactions": len(pseudo),
        "sample_s_20_steps": round(sample_20_s, 3),
        "dp_round_s_200_clients": round(dp_round_s, 2),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
