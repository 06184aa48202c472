from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmfedrec.data.partition import by_attribute, client_members, dirichlet_groups, one_user_per_client
from mmfedrec.data.splits import leave_one_out
from mmfedrec.data.types import make_interactions
from mmfedrec.errors import DataError, MmfedrecError


def small_split():
    rows = [(u, i, t, 1.0) for u in (10, 20, 30) for t, i in enumerate(range(1, 6))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    return leave_one_out(make_interactions(frame), n_negatives=0)


def test_one_user_per_client_and_by_attribute() -> None:
    split = small_split()
    assert one_user_per_client(split).tolist() == [0, 1, 2]
    users = pd.DataFrame({"occupation": ["writer", "artist", "writer"]}, index=[30, 10, 20])
    assert by_attribute(users, "occupation", split).tolist() == [0, 1, 1]  # artist=0, writer=1
    with pytest.raises(DataError, match="no attribute 'age'"):
        by_attribute(users, "age", split)
    with pytest.raises(DataError, match="user 20 has no 'occupation'"):
        by_attribute(users.iloc[:2], "occupation", split)


def test_dirichlet_groups_cover_every_user_once_and_alpha_controls_balance() -> None:
    assignment = dirichlet_groups(1000, 10, alpha=100.0, seed=0)
    members = client_members(assignment)
    assert sorted(np.concatenate(members).tolist()) == list(range(1000))
    assert all((assignment[m] == c).all() for c, m in enumerate(members))
    balanced = np.bincount(assignment)
    skewed = np.bincount(dirichlet_groups(1000, 10, alpha=0.1, seed=0), minlength=10)
    assert balanced.min() >= 50 and skewed.min() >= 1
    assert skewed.max() > 2 * balanced.max()
    assert (dirichlet_groups(1000, 10, 0.5, seed=3) == dirichlet_groups(1000, 10, 0.5, seed=3)).all()
    with pytest.raises(MmfedrecError, match="n_clients <= n_users"):
        dirichlet_groups(3, 4, 1.0, 0)
