"""The one interface every augmenter implements: score items from training data, emit pseudo-items."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.generators.policy import AugmentationPolicy, PseudoInteractions, select_pseudo, sparse_users


class Augmenter(ABC):
    """Proposes pseudo-interactions for sparse clients; reads only the split's training events."""

    @abstractmethod
    def scores(self, split: Split, users: np.ndarray) -> np.ndarray:
        """(B, I) scores in [0, 1] of every item for `users` (B,); also a scorer for the evaluator."""

    def augment(self, split: Split, policy: AugmentationPolicy) -> PseudoInteractions:
        """Each sparse client's top unseen items, as weighted pseudo-interactions."""
        users = sparse_users(split, policy)
        return select_pseudo(self.scores(split, users), split, users, policy)


class NoAugmenter(Augmenter):
    """The ablation: no pseudo-interactions, every item scored 0."""

    def scores(self, split: Split, users: np.ndarray) -> np.ndarray:
        return np.zeros((len(users), split.n_items))

    def augment(self, split: Split, policy: AugmentationPolicy) -> PseudoInteractions:
        return PseudoInteractions.empty()
