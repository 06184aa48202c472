"""Popularity: score every item by its number of training interactions, the same for all users."""

from __future__ import annotations

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.evaluation.protocols import Scorer


def popularity_scorer(split: Split) -> Scorer:
    counts = split.item_counts().astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), split.n_items))

    return score
