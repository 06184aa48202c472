"""Which client holds which users: a client is one user (cross-device) or a silo of users (cross-silo).

Every partition is a (U,) int array, the client index of each user index of a `Split`, so any
engine can group training events by `assignment[split.train_users]`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmfedrec.data.splits import Split
from mmfedrec.errors import DataError, MmfedrecError


def one_user_per_client(split: Split) -> np.ndarray:
    """Client u is user u: the cross-device setting where a user's data never leaves their device."""
    return np.arange(split.n_users, dtype=np.int64)


def by_attribute(users_frame: pd.DataFrame, column: str, split: Split) -> np.ndarray:
    """One client per value of a user attribute (e.g. occupation): silos of similar users.

    Clients are numbered in the sorted order of the attribute's values.
    """
    if column not in users_frame.columns:
        raise DataError("users", f"no attribute {column!r}; found {list(users_frame.columns)}")
    values = users_frame[column].reindex(split.user_ids)
    if values.isna().any():
        missing = split.user_ids[values.isna().to_numpy()][0]
        raise DataError("users", f"user {missing} has no {column!r} attribute")
    _, assignment = np.unique(values.astype(str).to_numpy(), return_inverse=True)
    return assignment.astype(np.int64)


def dirichlet_groups(n_users: int, n_clients: int, alpha: float, seed: int) -> np.ndarray:
    """Users shuffled into `n_clients` silos whose sizes follow Dirichlet(alpha) proportions.

    Small `alpha` gives very unequal silos (a few large, many small), large `alpha` near-equal ones;
    every client gets at least one user.
    """
    if not 1 <= n_clients <= n_users:
        raise MmfedrecError(f"need 1 <= n_clients <= n_users, got {n_clients} clients for {n_users} users")
    if alpha <= 0:
        raise MmfedrecError(f"alpha must be positive, got {alpha}")
    rng = np.random.default_rng(seed)
    proportions = rng.dirichlet(np.full(n_clients, alpha))
    sizes = 1 + rng.multinomial(n_users - n_clients, proportions)
    assignment = np.repeat(np.arange(n_clients, dtype=np.int64), sizes)
    return assignment[rng.permutation(n_users)]


def client_members(assignment: np.ndarray) -> list[np.ndarray]:
    """The user indices of each client, in client order."""
    order = np.argsort(assignment, kind="stable")
    bounds = np.cumsum(np.bincount(assignment, minlength=int(assignment.max()) + 1))[:-1]
    return np.split(order, bounds)
