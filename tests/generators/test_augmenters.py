import numpy as np
import pytest

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError
from mmfedrec.generators import (
    AugmentationPolicy,
    ItemKNNAugmenter,
    NoAugmenter,
    PopularityAugmenter,
    PseudoInteractions,
    augmenter_from_name,
    make_sparse,
)
from mmfedrec.generators.policy import select_pseudo


def _assert_unseen(split: Split, pseudo: PseudoInteractions) -> None:
    seen = set(zip(split.train_users.tolist(), split.train_items.tolist(), strict=True))
    assert not any((u, i) in seen for u, i in zip(pseudo.users.tolist(), pseudo.items.tolist(), strict=True))
    assert pseudo.weights.dtype == np.float32


@pytest.mark.parametrize("name", ["popularity", "item-knn"])
def test_augmenters_emit_unseen_items_for_sparse_clients_only(split: Split, name: str) -> None:
    sparse_split, chosen = make_sparse(split, 0.5, 2, seed=0)
    policy = AugmentationPolicy(sparse_max=2, n_pseudo=4, weight=0.3)
    pseudo = augmenter_from_name(name).augment(sparse_split, policy)
    _assert_unseen(sparse_split, pseudo)
    assert set(pseudo.users.tolist()) <= set(chosen.tolist())
    assert np.bincount(pseudo.users).max() <= 4
    assert (pseudo.weights == np.float32(0.3)).all()


def test_item_knn_with_features_finds_the_users_block(split: Split) -> None:
    sparse_split, chosen = make_sparse(split, 0.5, 2, seed=0)
    features = np.zeros((20, 2))
    features[:10, 0] = features[10:, 1] = 1.0  # one feature direction per planted block
    pseudo = ItemKNNAugmenter(features, neighbours=9).augment(
        sparse_split, AugmentationPolicy(sparse_max=2, n_pseudo=3)
    )
    assert len(pseudo) == 3 * len(chosen)
    assert ((pseudo.items // 10) == (pseudo.users % 2)).all()  # every pseudo-item is from the user's block


def test_select_pseudo_respects_min_confidence_and_n_pseudo(split: Split) -> None:
    users = np.array([0, 1])
    scores = np.tile(np.linspace(0.0, 0.95, split.n_items), (2, 1))  # item i scores i/20
    pseudo = select_pseudo(scores, split, users, AugmentationPolicy(n_pseudo=5, min_confidence=0.5))
    _assert_unseen(split, pseudo)
    assert (scores[0, pseudo.items] >= 0.5).all()
    assert np.bincount(pseudo.users, minlength=2).max() <= 5
    # user 0 trains on 8 items of block 0 (0..9); its top unseen items are the 5 highest of 10..19
    np.testing.assert_array_equal(np.sort(pseudo.items[pseudo.users == 0]), [15, 16, 17, 18, 19])


def test_popularity_scores_the_most_trained_items_highest(split: Split) -> None:
    scores = PopularityAugmenter().scores(split, np.array([0]))
    counts = np.bincount(split.train_items, minlength=split.n_items)
    assert scores.max() == 1.0
    np.testing.assert_allclose(scores[0], counts / counts.max())


def test_none_emits_nothing_and_unknown_names_fail(split: Split) -> None:
    assert isinstance(augmenter_from_name("none"), NoAugmenter)
    assert len(augmenter_from_name("none").augment(split, AugmentationPolicy())) == 0
    with pytest.raises(MmfedrecError, match="unknown augmenter"):
        augmenter_from_name("gan")
