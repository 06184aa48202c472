"""Explicit ratings to implicit feedback: threshold, one event per (user, item), k-core."""

from __future__ import annotations

import numpy as np

from mmfedrec.data.types import Interactions, make_interactions


def to_implicit(interactions: Interactions, min_rating: float | None) -> Interactions:
    """Keep events with rating >= `min_rating` (None keeps all), then one event per (user, item).

    A repeated (user, item) pair keeps its latest event; ties on time keep the highest rating, then
    the first row, so the result does not depend on anything but the file's content and order.
    """
    frame = interactions.frame
    if min_rating is not None:
        frame = frame[frame["rating"].to_numpy() >= min_rating]
    users, items = frame["user_id"].to_numpy(), frame["item_id"].to_numpy()
    row = np.arange(len(frame))
    order = np.lexsort((row, -frame["rating"].to_numpy(), -frame["timestamp"].to_numpy(), items, users))
    users, items = users[order], items[order]
    first = np.ones(len(order), dtype=bool)  # the first row of each (user, item) run in this order
    first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return make_interactions(frame.iloc[np.sort(order[first])])


def kcore(interactions: Interactions, k: int) -> Interactions:
    """Iteratively drop users and items with fewer than `k` events until none is left (k <= 1: no-op)."""
    frame = interactions.frame
    if k <= 1:
        return interactions
    while True:
        user_counts = frame["user_id"].map(frame["user_id"].value_counts())
        item_counts = frame["item_id"].map(frame["item_id"].value_counts())
        keep = ((user_counts >= k) & (item_counts >= k)).to_numpy()
        if keep.all():
            return make_interactions(frame)
        frame = frame[keep]
