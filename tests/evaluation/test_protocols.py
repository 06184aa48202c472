import itertools

import numpy as np
import pandas as pd
import pytest

from mmfedrec.data.splits import NO_ITEM, leave_one_out
from mmfedrec.data.types import make_interactions
from mmfedrec.errors import MmfedrecError
from mmfedrec.evaluation.protocols import activity_buckets, evaluate, rank_users
from mmfedrec.federation.engines.popularity import popularity_scorer
from tests.federation.helpers import planted_split


def oracle_scorer(split, stage: str, train_items_on_top: bool = False):
    """Scores the held-out item 1, training items 2 when asked (they must be masked), the rest 0."""
    held_out = split.valid_items if stage == "valid" else split.test_items
    indptr, train_items = split.train_csr()

    def score(users: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(users), split.n_items))
        scores[np.arange(len(users)), held_out[users]] = 1.0
        if train_items_on_top:
            for row, user in enumerate(users):
                scores[row, train_items[indptr[user] : indptr[user + 1]]] = 2.0
        return scores

    return score


def test_an_oracle_is_perfect_under_both_protocols() -> None:
    split = planted_split()
    result = evaluate(oracle_scorer(split, "test"), split, "test")
    assert result["sampled"]["hr@10"] == 1.0 and result["sampled"]["ndcg@10"] == 1.0
    assert result["full"]["recall@20"] == 1.0 and result["full"]["ndcg@20"] == 1.0


def test_full_ranking_masks_training_items_but_sampled_never_sees_them() -> None:
    split = planted_split()
    ranks = rank_users(oracle_scorer(split, "test", train_items_on_top=True), split, "test")
    assert (ranks.full == 0).all()  # training items scored 2 are masked
    assert (ranks.sampled == 0).all()  # negatives are never training items


def test_constant_scorer_gets_the_random_expectation() -> None:
    split = planted_split(n_negatives=20)
    ranks = rank_users(lambda users: np.zeros((len(users), split.n_items)), split, "valid")
    assert (ranks.sampled == 10).all()  # 20 tied negatives: the positive takes the middle place


def test_buckets_cover_every_user_once_and_flag_sparse_users() -> None:
    split = planted_split()
    users = split.evaluated_users("test")
    buckets = activity_buckets(split, users)
    quintiles = np.stack([buckets[f"q{q}"] for q in range(1, 6)])
    assert (quintiles.sum(0) == 1).all()
    assert (buckets["sparse"] == (split.train_counts()[users] <= 5)).all()


def test_no_quintile_is_empty_when_many_users_share_a_count() -> None:
    """Half the users with the same count: edges on the counts left q1 and q2 empty."""
    rows = [(u, i, t) for u in range(100) for t, i in enumerate(range(5 if u < 50 else 5 + u // 5))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=1.0)
    split = leave_one_out(make_interactions(frame), n_negatives=0)
    users = split.evaluated_users("test")
    buckets = activity_buckets(split, users)
    assert [int(buckets[f"q{q}"].sum()) for q in range(1, 6)] == [20] * 5
    counts = split.train_counts()[users]
    ordered = [counts[buckets[f"q{q}"]] for q in range(1, 6)]
    assert all(a.max() <= b.min() for a, b in itertools.pairwise(ordered))  # still ordered by activity


def independent_popularity_hr(split, k: int, seed: int) -> float:
    """A plain re-implementation of the sampled protocol for popularity: random tie-breaking,
    one user at a time, sharing nothing with the evaluator but the split."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(split.train_items, minlength=split.n_items)
    hits = []
    for user in range(split.n_users):
        positive = split.test_items[user]
        if positive == NO_ITEM:
            continue
        candidates = np.concatenate([[positive], split.test_negatives[user]])
        shuffled = rng.permutation(len(candidates))
        order = shuffled[np.argsort(-counts[candidates[shuffled]], kind="stable")]
        hits.append(candidates[order[:k]].tolist().count(positive) > 0)
    return float(np.mean(hits))


def test_popularity_agrees_with_an_independent_implementation() -> None:
    split = planted_split(n_users=400, n_items=200, n_negatives=50)
    ours = evaluate(popularity_scorer(split), split, "test")["sampled"]["hr@10"]
    independent = np.mean([independent_popularity_hr(split, 10, seed) for seed in range(5)])
    assert ours == pytest.approx(independent, abs=0.03)


@pytest.mark.realdata
def test_popularity_on_movielens_agrees_with_an_independent_implementation(shared_data) -> None:
    from mmfedrec.config import DataConfig
    from mmfedrec.data.registry import prepare_split

    split = prepare_split(DataConfig("movielens-100k", root=shared_data / "ml-100k"), 0, use_cache=False)
    ours = evaluate(popularity_scorer(split), split, "test")["sampled"]["hr@10"]
    independent = np.mean([independent_popularity_hr(split, 10, seed) for seed in range(3)])
    assert ours == pytest.approx(independent, abs=0.02)  # ~943 users: binomial std ~0.015


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_diverged_model_is_refused_not_scored_perfect(bad: float) -> None:
    split = planted_split()
    scorer = oracle_scorer(split, "valid")

    def diverged(users: np.ndarray) -> np.ndarray:
        scores = scorer(users)
        scores[len(users) // 2] = bad  # NaN compares false with everything: every rank would be 0
        return scores

    with pytest.raises(MmfedrecError, match=r"valid evaluation: the scores of 1 of \d+ users contain NaN or inf"):
        rank_users(diverged, split, "valid")
