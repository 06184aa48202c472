"""Ranking metrics for one held-out item per user, from its 0-based rank among the candidates.

With a single relevant item, the ideal DCG is 1, so every metric is a function of the rank r
(number of candidates placed above the positive). All functions are vectorised over users.
"""

from __future__ import annotations

import numpy as np


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """HR@K = 1[r < K]: the positive is in the top K."""
    return (ranks < k).astype(np.float64)


def recall(ranks: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = |relevant in top K| / |relevant|; with one relevant item it equals HR@K."""
    return hit_rate(ranks, k)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K = 1[r < K] / log2(r + 2): DCG of the single positive over the ideal DCG of 1."""
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    """MRR@K = 1[r < K] / (r + 1): reciprocal rank, cut at K."""
    return np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)


def rank_of_positive(positive_scores: np.ndarray, candidate_scores: np.ndarray) -> np.ndarray:
    """0-based rank of each positive among its candidates (positive excluded from `candidate_scores`).

    Ties are split evenly: the positive takes the middle place among candidates with an equal
    score, so a constant scorer gets the rank a random one would on average, not the best or worst.
    Candidates scored -inf (masked) never count.
    """
    positive = positive_scores[:, None]
    above = (candidate_scores > positive).sum(axis=1)
    tied = (candidate_scores == positive).sum(axis=1)
    return above + tied // 2
