import numpy as np
import pytest

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError
from mmfedrec.generators import hold_out_clients, joining_split, make_sparse


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


def test_held_out_clients_leave_training_and_evaluation(split: Split) -> None:
    training, held = hold_out_clients(split, fraction=0.25, min_train=5, seed=0)
    assert len(held) == 10 and not np.isin(training.train_users, held).any()
    assert set(training.evaluated_users("valid").tolist()).isdisjoint(held.tolist())
    assert set(training.evaluated_users("test").tolist()).isdisjoint(held.tolist())
    others = np.setdiff1d(np.arange(split.n_users), held)
    np.testing.assert_array_equal(training.train_counts()[others], split.train_counts()[others])
    np.testing.assert_array_equal(training.test_items[others], split.test_items[others])
    _, again = hold_out_clients(split, 0.25, 5, seed=0)
    np.testing.assert_array_equal(held, again)


def test_joiners_join_with_their_latest_events_and_alone_are_evaluated(split: Split) -> None:
    _, held = hold_out_clients(split, fraction=0.25, min_train=5, seed=0)
    joining = joining_split(split, held, 2)
    np.testing.assert_array_equal(joining.evaluated_users("test"), held)
    np.testing.assert_array_equal(joining.test_items[held], split.test_items[held])
    assert (joining.train_counts()[held] == 2).all()
    indptr, items = split.train_csr()
    joined_indptr, joined_items = joining.train_csr()
    for user in held:
        np.testing.assert_array_equal(
            joined_items[joined_indptr[user] : joined_indptr[user + 1]], items[indptr[user + 1] - 2 : indptr[user + 1]]
        )
    others = np.setdiff1d(np.arange(split.n_users), held)
    np.testing.assert_array_equal(joining.train_counts()[others], split.train_counts()[others])
