"""The sparse-client protocol: make some dense users sparse, so augmentation can be measured on them.

A made-sparse user keeps only their most recent training events, while their valid/test items
stay, so the evaluator scores them exactly as before with less history.
"""

from __future__ import annotations

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError


def make_sparse(split: Split, fraction: float, max_train: int, seed: int) -> tuple[Split, np.ndarray]:
    """Cut a seeded `fraction` of the eligible users to their `max_train` most recent training events.

    Eligible users are evaluated (have a test item) and have more than `max_train` training
    events. Recency is ordered by (train_times, item index), like the split's own tie-break.

    Returns:
        The truncated split and the sorted user indices (S,) that were made sparse.
    """
    if not 0.0 <= fraction <= 1.0:
        raise MmfedrecError(f"fraction must lie in [0, 1], got {fraction}")
    if max_train < 0:
        raise MmfedrecError(f"max_train must be non-negative, got {max_train}")
    counts = split.train_counts()
    evaluated = split.evaluated_users("test")
    eligible = evaluated[counts[evaluated] > max_train]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=round(fraction * len(eligible)), replace=False))

    order = np.lexsort((split.train_items, split.train_times, split.train_users))  # by user, then recency
    sorted_users = split.train_users[order]
    starts = np.concatenate([[0], np.cumsum(counts)])[sorted_users]
    from_end = counts[sorted_users] - 1 - (np.arange(len(order)) - starts)  # 0 = most recent
    keep = np.empty(len(order), dtype=bool)
    keep[order] = ~np.isin(sorted_users, chosen) | (from_end < max_train)
    return split.with_train(keep), chosen
