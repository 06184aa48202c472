import json
from pathlib import Path

import numpy as np
import pytest

from mmfedrec.generators import AugmentationPolicy, PopularityAugmenter, PseudoInteractions, synthesize_for_client
from mmfedrec.generators.inspection import (
    category_coverage,
    nearest_real_jaccard,
    popularity_distance,
    synth_report,
    write_synth_report,
)


def test_nearest_real_jaccard_on_a_hand_worked_example() -> None:
    real = np.array(
        [
            [1, 1, 0, 0, 0],  # user 0: {0, 1}
            [1, 1, 1, 0, 0],  # user 1: {0, 1, 2}
            [0, 0, 0, 1, 1],  # user 2: {3, 4}
        ],
        dtype=bool,
    )
    synthetic = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=bool)  # {0, 2} for user 0, {3, 4} for user 1
    own, other = nearest_real_jaccard(synthetic, np.array([0, 1]), real)
    # {0,2} vs own {0,1}: 1/3; vs user 1 {0,1,2}: 2/3; vs user 2: 0  -> nearest other 2/3
    # {3,4} vs own {0,1,2}: 0; vs user 0: 0; vs user 2 {3,4}: 1 (a copy of another user)
    np.testing.assert_allclose(own, [1 / 3, 0.0])
    np.testing.assert_allclose(other, [2 / 3, 1.0])


def test_popularity_distance_on_a_hand_worked_example() -> None:
    # real distribution (1/2, 1/2, 0), synthetic (0, 1/2, 1/2): TV = 1/2, JS = 1/2 bit
    distance = popularity_distance(np.array([0, 1]), np.array([1, 2]), n_items=3)
    assert distance["total_variation"] == pytest.approx(0.5)
    assert distance["jensen_shannon"] == pytest.approx(0.5)
    assert popularity_distance(np.array([0, 1]), np.array([1, 0]), 3)["jensen_shannon"] == pytest.approx(0.0)


def test_category_coverage_is_the_mean_fraction_of_categories_touched() -> None:
    labels = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0]])
    # user 5 touches item 0 -> 1/4 of categories; user 7 touches items 1 and 2 -> 3/4
    assert category_coverage(np.array([5, 7, 7]), np.array([0, 1, 2]), labels) == pytest.approx(0.5)


def test_synthesis_and_report_are_written_atomically(split, tmp_path: Path) -> None:
    policy = AugmentationPolicy(sparse_max=8, n_pseudo=3)
    augmenter = PopularityAugmenter()
    synthesis = synthesize_for_client(augmenter, split, user=0, policy=policy, top_n=5)
    assert synthesis.history == split.train_items[split.train_users == 0].tolist()
    assert len(synthesis.pseudo_items) == 3 and not set(synthesis.pseudo_items) & set(synthesis.history)
    assert synthesis.pseudo_scores == sorted(synthesis.pseudo_scores, reverse=True)

    users = np.arange(split.n_users)
    pseudo = augmenter.augment(split, policy)
    labels = np.eye(2, dtype=int)[np.arange(split.n_items) // 10]  # (I, 2): the planted blocks
    report = synth_report(split, pseudo, augmenter.scores(split, users), users, top_n=5, labels=labels)
    assert report["clients"] == split.n_users and report["pseudo_interactions"] == len(pseudo)
    assert 0.0 <= report["privacy"]["nearest_other_jaccard_quantiles"]["0.5"] <= 1.0
    assert report["category_coverage"]["real"] == pytest.approx(0.5)  # each user touches one block
    path = write_synth_report(tmp_path / "synth", report, synthesis)
    assert json.loads(path.read_text())["client"]["user"] == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["synth_report.json"]


def test_report_of_no_pseudo_items_is_well_defined(split) -> None:
    report = synth_report(split, PseudoInteractions.empty(), np.zeros((0, split.n_items)), np.zeros(0, np.int64))
    assert report["clients"] == 0 and report["privacy"]["near_copies"] == 0
