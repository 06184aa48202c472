"""Popularity augmentation: the most-interacted unseen items, the simplest baseline to beat."""

from __future__ import annotations

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.generators.augmenters.base import Augmenter


class PopularityAugmenter(Augmenter):
    """Scores an item by its training interaction count divided by the largest count."""

    def scores(self, split: Split, users: np.ndarray) -> np.ndarray:
        counts = split.item_counts().astype(np.float64)  # (I,)
        popularity = counts / max(counts.max(), 1.0)
        return np.broadcast_to(popularity, (len(users), split.n_items)).copy()  # (B, I)
