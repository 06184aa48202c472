"""Item-kNN augmentation (Sarwar et al., 2001): items similar to the user's history.

Similarity is the cosine of multimodal item features when given, else of item co-occurrence
columns of the training matrix (items liked by the same users).
"""

from __future__ import annotations

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.generators.augmenters.base import Augmenter


class ItemKNNAugmenter(Augmenter):
    """Scores an item by its mean pruned similarity to the user's training items, in [0, 1].

    Args:
        item_embeddings: (I, D) item features (e.g. fused text+image); None uses co-occurrence.
        neighbours: each history item votes only for its this-many most similar items.
    """

    def __init__(self, item_embeddings: np.ndarray | None = None, neighbours: int = 50) -> None:
        self.item_embeddings = item_embeddings
        self.neighbours = neighbours

    def item_vectors(self, split: Split) -> np.ndarray:
        """(I, D) L2-normalized item vectors: the features, or each item's column of users."""
        if self.item_embeddings is None:
            vectors = np.zeros((split.n_items, split.n_users))
            vectors[split.train_items, split.train_users] = 1.0
        else:
            vectors = np.asarray(self.item_embeddings, dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def scores(self, split: Split, users: np.ndarray) -> np.ndarray:
        vectors = self.item_vectors(split)
        indptr, history = split.train_csr()
        k = min(self.neighbours, split.n_items - 1)
        out = np.zeros((len(users), split.n_items))
        for row, user in enumerate(users):
            items = history[indptr[user] : indptr[user + 1]]
            if len(items) == 0:
                continue
            similarity = np.clip(vectors[items] @ vectors.T, 0.0, 1.0)  # (h, I)
            similarity[np.arange(len(items)), items] = 0.0  # an item is not its own neighbour
            cutoff = np.partition(similarity, -k, axis=1)[:, -k:].min(axis=1, keepdims=True)  # (h, 1)
            out[row] = np.where(similarity >= cutoff, similarity, 0.0).mean(axis=0)
        return out
