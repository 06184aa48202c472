"""The one evaluator every method and baseline goes through.

Two protocols on a leave-one-out `Split`:
- sampled: the held-out item ranked against its user's stored negatives (99 by default);
- full: ranked against every item, with the user's training items (and, at test, the valid
  item) masked, since a known interaction cannot be a recommendation.
A scorer maps a batch of user indices to scores over all items, so both protocols score the
exact same model output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from mmfedrec.data.splits import NO_ITEM, Split
from mmfedrec.errors import TrainingDiverged
from mmfedrec.evaluation import metrics

Scorer = Callable[[np.ndarray], np.ndarray]  # user indices (B,) -> scores (B, n_items)

SAMPLED_KS = (5, 10, 20)
FULL_KS = (10, 20, 50)
SPARSE_MAX_TRAIN = 5  # a client with at most this many training interactions is "sparse"


@dataclass(frozen=True)
class UserRanks:
    """Rank of each evaluated user's held-out item under both protocols."""

    users: np.ndarray  # (E,) user indices
    sampled: np.ndarray  # (E,) rank among positive + negatives
    full: np.ndarray  # (E,) rank among all unmasked items

    def metrics(self, mask: np.ndarray | None = None) -> dict[str, dict[str, float]]:
        """Mean metrics over users (all, or those where `mask` is true): {"sampled": .., "full": ..}."""
        sampled = self.sampled if mask is None else self.sampled[mask]
        full = self.full if mask is None else self.full[mask]
        return {
            "sampled": _means(sampled, SAMPLED_KS, ("hr", "ndcg", "mrr")),
            "full": _means(full, FULL_KS, ("recall", "ndcg", "mrr")),
            "users": len(sampled),
        }


def _means(ranks: np.ndarray, ks: Iterable[int], names: tuple[str, ...]) -> dict[str, float]:
    functions = {"hr": metrics.hit_rate, "recall": metrics.recall, "ndcg": metrics.ndcg, "mrr": metrics.mrr}
    if len(ranks) == 0:
        return {f"{name}@{k}": float("nan") for k in ks for name in names}
    return {f"{name}@{k}": float(functions[name](ranks, k).mean()) for k in ks for name in names}


def rank_users(scorer: Scorer, split: Split, stage: str, batch_size: int = 1024) -> UserRanks:
    """Score every evaluated user once and rank the held-out item under both protocols."""
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    held_out = split.valid_items if stage == "valid" else split.test_items
    negatives = split.valid_negatives if stage == "valid" else split.test_negatives
    users = split.evaluated_users(stage)
    indptr, train_items = split.train_csr()
    sampled_ranks = np.empty(len(users), dtype=np.int64)
    full_ranks = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.asarray(scorer(batch), dtype=np.float64)  # (B, I)
        if scores.shape != (len(batch), split.n_items):
            raise ValueError(f"scorer returned shape {scores.shape}, expected {(len(batch), split.n_items)}")
        _require_finite(scores, batch, stage)
        rows = np.arange(len(batch))
        positive = scores[rows, held_out[batch]]  # (B,)
        sampled_ranks[start : start + len(batch)] = metrics.rank_of_positive(
            positive, np.take_along_axis(scores, negatives[batch], axis=1)
        )
        masked = scores.copy()
        for row, user in enumerate(batch):
            masked[row, train_items[indptr[user] : indptr[user + 1]]] = -np.inf
        if stage == "test":
            known_valid = split.valid_items[batch]
            has_valid = known_valid != NO_ITEM
            masked[rows[has_valid], known_valid[has_valid]] = -np.inf
        masked[rows, held_out[batch]] = -np.inf  # the positive is not its own competitor
        full_ranks[start : start + len(batch)] = metrics.rank_of_positive(positive, masked)
    return UserRanks(users, sampled_ranks, full_ranks)


def _require_finite(scores: np.ndarray, users: np.ndarray, stage: str) -> None:
    """A NaN compares false with everything, so a diverged model would rank every held-out item
    first and score perfect metrics: refuse to rank it."""
    broken = ~np.isfinite(scores).all(axis=1)
    if broken.any():
        raise TrainingDiverged(
            f"{stage} evaluation: the scores of {int(broken.sum())} of {len(users)} users contain NaN or inf "
            f"(first: user index {int(users[broken.argmax()])}); training diverged: lower the learning rates"
        )


def activity_buckets(split: Split, users: np.ndarray) -> dict[str, np.ndarray]:
    """Masks over `users`: quintiles of training-interaction count (q1 = least active) and "sparse".

    Quintiles are by rank among the evaluated users, equal counts ordered by user index, so each
    holds a fifth of them: with edges on the counts, ties (many users with the same count) could
    leave a quintile empty.
    """
    counts = split.train_counts()[users]
    rank = np.empty(len(users), dtype=np.int64)
    rank[np.argsort(counts, kind="stable")] = np.arange(len(users))
    quintile = rank * 5 // max(len(users), 1)  # 0..4
    buckets = {f"q{q + 1}": quintile == q for q in range(5)}
    buckets["sparse"] = counts <= SPARSE_MAX_TRAIN
    return buckets


def item_buckets(split: Split, users: np.ndarray, stage: str) -> dict[str, np.ndarray]:
    """Masks over `users`: "cold" where the held-out item has no training event at all (no ID
    vector learnt it: only content can rank it), "warm" otherwise."""
    held_out = (split.valid_items if stage == "valid" else split.test_items)[users]
    cold = split.item_counts()[held_out] == 0
    return {"cold": cold, "warm": ~cold}


BUCKETS = ("q1", "q2", "q3", "q4", "q5", "sparse", "cold", "warm")  # every evaluation reports these


def user_buckets(split: Split, users: np.ndarray, stage: str) -> dict[str, np.ndarray]:
    """Every bucket of `BUCKETS` as a mask over `users` (activity, then the held-out item's coldness)."""
    return activity_buckets(split, users) | item_buckets(split, users, stage)


def evaluate(
    scorer: Scorer, split: Split, stage: str, groups: dict[str, np.ndarray] | None = None
) -> dict[str, object]:
    """Metrics overall and per bucket for one stage.

    Args:
        groups: extra named user-index arrays to report (e.g. {"sparse": made-sparse clients,
            "dense": the rest} in the sparse-client protocol); they replace the activity buckets
            of the same name.
    """
    ranks = rank_users(scorer, split, stage)
    buckets = user_buckets(split, ranks.users, stage)
    for name, members in (groups or {}).items():
        buckets[name] = np.isin(ranks.users, members)
    return {
        **ranks.metrics(),
        "buckets": {name: ranks.metrics(mask) for name, mask in buckets.items()},
    }
