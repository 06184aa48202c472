"""Per-user leave-one-out splits with sampled negatives, stored once per seed.

Tie-break (documented, independent of file row order): each user's events are ordered by
(timestamp, item_id); the last one is test, the second last is valid. Many MovieLens users rate
several items in the same second, so ordering by timestamp alone would depend on row order.
Users with fewer than 3 events keep them all in train and are not evaluated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.atomic import atomic_path
from mmfedrec.data.types import Interactions
from mmfedrec.errors import DataError, MmfedrecError

NO_ITEM = -1


@dataclass(frozen=True)
class Split:
    """Dense-indexed train/valid/test arrays; row u of the per-user arrays is user index u."""

    user_ids: np.ndarray  # (U,) raw user id of each user index
    item_ids: np.ndarray  # (I,) raw item id of each item index
    train_users: np.ndarray  # (N,) user index of each training event
    train_items: np.ndarray  # (N,) item index of each training event
    train_times: np.ndarray  # (N,) timestamp, for temporal truncation (sparse-client protocol)
    valid_items: np.ndarray  # (U,) held-out valid item index, NO_ITEM when the user is not evaluated
    test_items: np.ndarray  # (U,) held-out test item index, NO_ITEM when the user is not evaluated
    valid_negatives: np.ndarray  # (U, n_neg) items the user never touched; every method sees the same
    test_negatives: np.ndarray  # (U, n_neg)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def train_counts(self) -> np.ndarray:
        """(U,) number of training events per user: the activity used for buckets."""
        return np.bincount(self.train_users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """(I,) number of training events per item: its popularity, zero for a cold item."""
        return np.bincount(self.train_items, minlength=self.n_items)

    def evaluated_users(self, stage: str) -> np.ndarray:
        held_out = self.valid_items if stage == "valid" else self.test_items
        return np.flatnonzero(held_out != NO_ITEM)

    def train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr (U+1,), items (N,)): each user's training items, grouped by user in time order."""
        order = np.lexsort((self.train_items, self.train_times, self.train_users))
        indptr = np.concatenate([[0], np.cumsum(self.train_counts())])
        return indptr, self.train_items[order]

    def with_train(self, keep: np.ndarray) -> Split:
        """The same split with only the training events where `keep` is true (valid/test untouched)."""
        return Split(
            self.user_ids,
            self.item_ids,
            self.train_users[keep],
            self.train_items[keep],
            self.train_times[keep],
            self.valid_items,
            self.test_items,
            self.valid_negatives,
            self.test_negatives,
        )

    def save(self, path: Path) -> None:
        """Write all arrays as safetensors (no pickle), atomically."""
        from safetensors.numpy import save_file

        with atomic_path(path) as tmp:
            save_file({f.name: np.ascontiguousarray(getattr(self, f.name)) for f in fields(self)}, str(tmp))

    @classmethod
    def load(cls, path: Path) -> Split:
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
        missing = {f.name for f in fields(cls)} - arrays.keys()
        if missing:
            raise DataError(path, f"split file lacks arrays {sorted(missing)}")
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for f in fields(self):
            digest.update(np.ascontiguousarray(getattr(self, f.name)).tobytes())
        return digest.hexdigest()[:16]


def make_cold_items(split: Split, fraction: float, seed: int) -> tuple[Split, np.ndarray]:
    """The cold-start protocol: a seeded `fraction` of items loses every training event.

    Their valid and test events stay, so the evaluator asks every method to rank items that no
    client ever trained on: only item content can place them.

    Returns:
        The split without those items' training events, and the sorted item indices made cold.
    """
    if not 0.0 <= fraction < 1.0:
        raise MmfedrecError(f"--cold-items must lie in [0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 0xC01D])  # its own stream: the split's draws stay as they are
    cold = np.sort(rng.choice(split.n_items, size=round(fraction * split.n_items), replace=False))
    return split.with_train(~np.isin(split.train_items, cold)), cold


def leave_one_out(
    interactions: Interactions,
    seed: int = 0,
    n_negatives: int = 99,
    by_time: bool = True,
    user_names: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Split:
    """Hold out each user's last event for test and the one before for valid.

    Args:
        interactions: implicit events (one row per user-item pair after conversion).
        seed: seeds the negative sampling (and the order when `by_time` is false).
        n_negatives: sampled negatives per user and stage, drawn from items the user never touched.
        by_time: order by (timestamp, item_id); false orders randomly (data without timestamps).
        user_names: user ids -> the ids a user knows (`Dataset.original_user_ids`), for messages.
    """
    frame = interactions.frame
    if frame.empty:
        raise DataError("interactions", "no interactions to split")
    rng = np.random.default_rng(seed)
    user_ids, user_index = np.unique(frame["user_id"].to_numpy(), return_inverse=True)
    item_ids, item_index = np.unique(frame["item_id"].to_numpy(), return_inverse=True)
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    if by_time:
        order = np.lexsort((item_ids[item_index], times, user_index))
    else:
        order = np.lexsort((rng.random(len(frame)), user_index))
    users, items, times = user_index[order], item_index[order], times[order]

    counts = np.bincount(users, minlength=len(user_ids))
    ends = np.cumsum(counts)
    evaluated = counts >= 3
    test_pos = ends[evaluated] - 1
    valid_pos = ends[evaluated] - 2
    valid_items = np.full(len(user_ids), NO_ITEM, dtype=np.int64)
    test_items = np.full(len(user_ids), NO_ITEM, dtype=np.int64)
    valid_items[evaluated] = items[valid_pos]
    test_items[evaluated] = items[test_pos]
    keep = np.ones(len(users), dtype=bool)
    keep[test_pos] = False
    keep[valid_pos] = False

    check_negatives(users, items, user_ids if user_names is None else user_names(user_ids), len(item_ids), n_negatives)
    valid_negatives = sample_negatives(users, items, len(user_ids), len(item_ids), n_negatives, rng)
    test_negatives = sample_negatives(users, items, len(user_ids), len(item_ids), n_negatives, rng)
    return Split(
        user_ids.astype(np.int64),
        item_ids.astype(np.int64),
        users[keep].astype(np.int64),
        items[keep].astype(np.int64),
        times[keep],
        valid_items,
        test_items,
        valid_negatives,
        test_negatives,
    )


def check_negatives(users: np.ndarray, items: np.ndarray, names: np.ndarray, n_items: int, n_negatives: int) -> None:
    """Refuse, naming the user, a number of evaluation negatives that some user cannot get."""
    pairs = np.unique(users.astype(np.int64) * n_items + items)
    touched = np.bincount(pairs // n_items, minlength=len(names))  # distinct items per user
    fullest = int(np.argmax(touched))
    free = n_items - int(touched[fullest])
    if free < n_negatives:
        raise DataError(
            "interactions",
            f"user {names[fullest]} touched {touched[fullest]} of {n_items} items, leaving {free} to sample "
            f"{n_negatives} evaluation negatives from; lower --eval-negatives to at most {free}",
        )


def sample_negatives(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, n_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """(U, n_negatives) distinct items per user that the user never interacted with."""
    touched = pd.Series(items).groupby(users).agg(lambda s: set(s.tolist()))
    out = np.empty((n_users, n_negatives), dtype=np.int64)
    for user in range(n_users):
        seen = touched.get(user, set())
        free = n_items - len(seen)
        if free < n_negatives:
            raise DataError(
                "interactions",
                f"user index {user} touched {len(seen)} of {n_items} items; "
                f"cannot draw {n_negatives} negatives (lower --negatives)",
            )
        chosen: list[int] = []
        chosen_set: set[int] = set()
        while len(chosen) < n_negatives:
            for candidate in rng.integers(0, n_items, size=2 * n_negatives).tolist():
                if candidate not in seen and candidate not in chosen_set:
                    chosen.append(candidate)
                    chosen_set.add(candidate)
                    if len(chosen) == n_negatives:
                        break
        out[user] = chosen
    return out


def split_manifest(split: Split, seed: int, n_negatives: int, by_time: bool) -> str:
    """A JSON description stored next to the split so a reader knows how it was made."""
    return json.dumps(
        {
            "protocol": "leave-one-out",
            "order": "(timestamp, item_id)" if by_time else "random",
            "seed": seed,
            "negatives": n_negatives,
            "users": split.n_users,
            "items": split.n_items,
            "evaluated_users": int((split.test_items != NO_ITEM).sum()),
            "fingerprint": split.fingerprint(),
        },
        indent=2,
    )
