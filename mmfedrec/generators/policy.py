"""Which clients get synthetic data, how much, and the pseudo-interactions handed to local training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError


@dataclass(frozen=True)
class AugmentationPolicy:
    sparse_max: int = 5  # clients with at most this many training interactions are augmented
    n_pseudo: int = 10  # pseudo-items added per sparse client (fewer when confidence is low)
    weight: float = 0.5  # weight of a pseudo-interaction in the local loss (a real one weighs 1)
    min_confidence: float = 0.0  # pseudo-items scored below this (scores lie about in [0, 1]) are dropped

    def __post_init__(self) -> None:
        if self.n_pseudo < 0 or self.sparse_max < 0:
            raise MmfedrecError("sparse_max and n_pseudo must be non-negative")


@dataclass(frozen=True)
class PseudoInteractions:
    """Synthetic, weighted training events; never an item the user already trained on."""

    users: np.ndarray  # (P,) user index
    items: np.ndarray  # (P,) item index
    weights: np.ndarray  # (P,) float32 weight in the local loss

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def empty(cls) -> PseudoInteractions:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


def sparse_users(split: Split, policy: AugmentationPolicy) -> np.ndarray:
    """(S,) users with at most `policy.sparse_max` training interactions."""
    return np.flatnonzero(split.train_counts() <= policy.sparse_max)


def select_pseudo(
    scores: np.ndarray, split: Split, users: np.ndarray, policy: AugmentationPolicy
) -> PseudoInteractions:
    """Turn item scores (B, I) of `users` (B,) into each user's top unseen, confident pseudo-items,
    most confident first.

    Only training items are masked: an augmenter sees nothing of valid/test, so those may be
    proposed like any other unseen item.
    """
    masked = np.array(scores, dtype=np.float64)  # (B, I)
    position = np.full(split.n_users, -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    rows = position[split.train_users]
    masked[rows[rows >= 0], split.train_items[rows >= 0]] = -np.inf
    n_pick = min(policy.n_pseudo, split.n_items)
    if n_pick == 0 or len(users) == 0:
        return PseudoInteractions.empty()
    top = np.argpartition(-masked, n_pick - 1, axis=1)[:, :n_pick]  # (B, n_pick)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(masked, top, axis=1), axis=1, kind="stable"), axis=1)
    top_scores = np.take_along_axis(masked, top, axis=1)  # (B, n_pick), most confident first
    keep = np.isfinite(top_scores) & (top_scores >= policy.min_confidence)
    chosen_users = np.broadcast_to(users[:, None], top.shape)[keep]
    return PseudoInteractions(
        users=chosen_users.astype(np.int64),
        items=top[keep].astype(np.int64),
        weights=np.full(int(keep.sum()), policy.weight, dtype=np.float32),
    )
