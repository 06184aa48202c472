import numpy as np
import pytest

from mmfedrec.evaluation import metrics


def test_metrics_of_hand_worked_ranks() -> None:
    ranks = np.array([0, 3, 10])
    assert metrics.hit_rate(ranks, 10).tolist() == [1.0, 1.0, 0.0]
    assert metrics.recall(ranks, 10).tolist() == [1.0, 1.0, 0.0]
    # NDCG@10: 1/log2(0+2) = 1, 1/log2(3+2) = 0.4307, outside the top 10 -> 0
    assert metrics.ndcg(ranks, 10) == pytest.approx([1.0, 0.430677, 0.0], abs=1e-6)
    assert metrics.mrr(ranks, 10) == pytest.approx([1.0, 0.25, 0.0])
    assert metrics.hit_rate(ranks, 3).tolist() == [1.0, 0.0, 0.0]


def test_rank_splits_ties_and_ignores_masked_candidates() -> None:
    positive = np.array([0.5, 0.5])
    candidates = np.array([[0.5, 0.5, 0.7, 0.1], [-np.inf, -np.inf, 0.2, 0.1]])
    # row 0: one candidate above, two tied -> middle place 1 + 2 // 2 = 2; row 1: nothing above
    assert metrics.rank_of_positive(positive, candidates).tolist() == [2, 0]
