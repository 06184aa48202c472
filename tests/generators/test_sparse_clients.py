import numpy as np
import pytest

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError
from mmfedrec.generators import make_sparse


def test_make_sparse_keeps_the_most_recent_events_and_leaves_valid_test(split: Split) -> None:
    sparse_split, chosen = make_sparse(split, fraction=0.5, max_train=3, seed=0)
    assert len(chosen) == 20  # half of the 40 evaluated users, all with 8 > 3 training events
    counts = sparse_split.train_counts()
    assert (counts[chosen] == 3).all()
    others = np.setdiff1d(np.arange(split.n_users), chosen)
    assert (counts[others] == split.train_counts()[others]).all()
    np.testing.assert_array_equal(sparse_split.valid_items, split.valid_items)
    np.testing.assert_array_equal(sparse_split.test_items, split.test_items)
    indptr, items = split.train_csr()
    sparse_indptr, sparse_items = sparse_split.train_csr()
    for user in chosen:
        np.testing.assert_array_equal(
            sparse_items[sparse_indptr[user] : sparse_indptr[user + 1]], items[indptr[user + 1] - 3 : indptr[user + 1]]
        )


def test_make_sparse_breaks_time_ties_by_item_index() -> None:
    # one user, four events at the same second: the most recent two are the highest item indices
    split = Split(
        np.arange(1), np.arange(6), np.zeros(4, np.int64), np.array([3, 0, 5, 1]), np.zeros(4, np.int64),
        np.array([2]), np.array([4]), np.zeros((1, 0), np.int64), np.zeros((1, 0), np.int64),
    )  # fmt: skip
    sparse_split, chosen = make_sparse(split, fraction=1.0, max_train=2, seed=0)
    np.testing.assert_array_equal(chosen, [0])
    assert sorted(sparse_split.train_items.tolist()) == [3, 5]


def test_make_sparse_is_seeded_and_validates(split: Split) -> None:
    _, first = make_sparse(split, 0.3, 2, seed=4)
    _, again = make_sparse(split, 0.3, 2, seed=4)
    np.testing.assert_array_equal(first, again)
    with pytest.raises(MmfedrecError, match="fraction"):
        make_sparse(split, 1.5, 2, seed=0)
