"""A tiny planted-structure split: two user groups, each liking its own block of items."""

from __future__ import annotations

import numpy as np
import pytest

from mmfedrec.data.splits import Split

N_USERS, N_ITEMS, BLOCK = 40, 20, 10


def planted_split(seed: int = 0) -> Split:
    """User u belongs to group u % 2 and interacts with every item of its block (items g*10..g*10+9).

    Two random block items per user are held out as valid and test; the rest are training events
    with increasing timestamps. Negatives come from the other block.
    """
    rng = np.random.default_rng(seed)
    train_users, train_items, train_times = [], [], []
    valid, test, negatives = [], [], []
    for user in range(N_USERS):
        block = np.arange(BLOCK) + BLOCK * (user % 2)
        items = rng.permutation(block)
        valid.append(items[0])
        test.append(items[1])
        train_users += [user] * (BLOCK - 2)
        train_items += items[2:].tolist()
        train_times += list(range(BLOCK - 2))
        other = np.setdiff1d(np.arange(N_ITEMS), block)
        negatives.append(rng.choice(other, size=5, replace=False))
    return Split(
        user_ids=np.arange(N_USERS, dtype=np.int64),
        item_ids=np.arange(N_ITEMS, dtype=np.int64),
        train_users=np.array(train_users, dtype=np.int64),
        train_items=np.array(train_items, dtype=np.int64),
        train_times=np.array(train_times, dtype=np.int64),
        valid_items=np.array(valid, dtype=np.int64),
        test_items=np.array(test, dtype=np.int64),
        valid_negatives=np.array(negatives, dtype=np.int64),
        test_negatives=np.array(negatives, dtype=np.int64),
    )


@pytest.fixture
def split() -> Split:
    return planted_split()
