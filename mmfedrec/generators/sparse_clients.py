"""The sparse-client protocols, so augmentation can be measured where it is meant to help.

Cut to sparse (`make_sparse`): some dense users keep only their most recent training events,
while their valid/test items stay, so the evaluator scores them exactly as before with less
history. New clients (`hold_out_clients`, `joining_split`): some users take no part in training
and join the trained federation afterwards with their 1, 3 or 5 most recent events, the
situation a deployed system meets daily.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmfedrec.data.splits import NO_ITEM, Split
from mmfedrec.errors import MmfedrecError


def make_sparse(split: Split, fraction: float, max_train: int, seed: int) -> tuple[Split, np.ndarray]:
    """Cut a seeded `fraction` of the eligible users to their `max_train` most recent training events.

    Eligible users are evaluated (have a test item) and have more than `max_train` training
    events. Recency is ordered by (train_times, item index), like the split's own tie-break.

    Returns:
        The truncated split and the sorted user indices (S,) that were made sparse.
    """
    if max_train < 0:
        raise MmfedrecError(f"max_train must be non-negative, got {max_train}")
    chosen = _choose(split, fraction, max_train + 1, seed)
    return split.with_train(_keep_recent(split, chosen, max_train)), chosen


def hold_out_clients(split: Split, fraction: float, min_train: int, seed: int) -> tuple[Split, np.ndarray]:
    """Withhold a seeded `fraction` of the evaluated users with at least `min_train` training events.

    They leave training entirely (no events) and are not evaluated while it runs (no valid/test
    item), so neither model selection nor any other client sees them.

    Returns:
        The split training runs on and the sorted user indices (S,) held out.
    """
    chosen = _choose(split, fraction, min_train, seed)
    held = np.isin(split.train_users, chosen)
    hidden = split.with_train(~held)
    valid, test = split.valid_items.copy(), split.test_items.copy()
    valid[chosen] = NO_ITEM
    test[chosen] = NO_ITEM
    return replace(hidden, valid_items=valid, test_items=test), chosen


def joining_split(split: Split, joiners: np.ndarray, n_items: int) -> Split:
    """The split `joiners` join on: each with its `n_items` most recent training events and its
    valid/test items, the only users evaluated; every other user's events as in `split`."""
    only = np.full(split.n_users, NO_ITEM, dtype=split.valid_items.dtype)
    valid, test = only.copy(), only.copy()
    valid[joiners], test[joiners] = split.valid_items[joiners], split.test_items[joiners]
    joined = split.with_train(_keep_recent(split, joiners, n_items))
    return replace(joined, valid_items=valid, test_items=test)


def _choose(split: Split, fraction: float, min_train: int, seed: int) -> np.ndarray:
    """(S,) sorted: a seeded `fraction` of the evaluated users with at least `min_train` training events."""
    if not 0.0 <= fraction <= 1.0:
        raise MmfedrecError(f"fraction must lie in [0, 1], got {fraction}")
    evaluated = split.evaluated_users("test")
    eligible = evaluated[split.train_counts()[evaluated] >= min_train]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=round(fraction * len(eligible)), replace=False))


def _keep_recent(split: Split, users: np.ndarray, max_train: int) -> np.ndarray:
    """(N,) training events to keep: all but those of `users` older than their `max_train` latest."""
    counts = split.train_counts()
    order = np.lexsort((split.train_items, split.train_times, split.train_users))  # by user, then recency
    sorted_users = split.train_users[order]
    starts = np.concatenate([[0], np.cumsum(counts)])[sorted_users]
    from_end = counts[sorted_users] - 1 - (np.arange(len(order)) - starts)  # 0 = most recent
    keep = np.empty(len(order), dtype=bool)
    keep[order] = ~np.isin(sorted_users, users) | (from_end < max_train)
    return keep
