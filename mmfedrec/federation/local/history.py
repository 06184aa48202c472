"""A client's recent items: what conditions a history-aware user state.

A client's time-ordered interactions never leave it. A model with `history = H > 0` adds to the
private user vector (through a shared context map, `MixtureOfExperts.client_vector`) a
recency-weighted mean of the current item vectors of the H items before each
training positive (next-item training), and of the H most recent items when it ranks. On a leave-one-out
split by time the held-out item is the user's next one, and what came just before it predicts it
far better than a static user vector does (benchmarks/README.md, "A history-aware user state").
The item vectors are read as inputs (no gradient): the history itself adds no upload.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from mmfedrec.data.splits import NO_ITEM, Split
from mmfedrec.federation.models.protocol import ClientModel

NO_HISTORY = -1  # fills history slots a user's past is too short for


def preceding_items(
    indptr: np.ndarray, items: np.ndarray, owners: np.ndarray, index: np.ndarray, length: int
) -> np.ndarray:
    """(E, length) the items before `items[index]` in the same CSR row `owners`, latest first.

    Args:
        indptr, items: CSR of each user's items in time order (`Split.train_csr`).
        owners: (E,) the CSR row (user) of each position.
        index: (E,) positions in `items`.
    """
    back = index[:, None] - np.arange(1, length + 1)  # (E, length)
    inside = back >= indptr[owners][:, None]
    return np.where(inside, items[np.maximum(back, 0)], NO_HISTORY)


def recent_items(split: Split, length: int, stage: str) -> np.ndarray:
    """(U, length) every user's latest training items, latest first, as they stand when the user
    is asked to rank its `stage` item: at test time that history ends with the validation item,
    which the user interacted with before the test one (as sequential recommenders evaluate)."""
    indptr, items = split.train_csr()
    users = np.arange(split.n_users)
    ends = indptr[1:]
    history = preceding_items(indptr, items, users, ends, length)
    if stage == "test":
        has_valid = split.valid_items != NO_ITEM
        shifted = np.concatenate([split.valid_items[:, None], history[:, :-1]], axis=1)
        history = np.where(has_valid[:, None], shifted, history)
    return history


def pseudo_history_table(users: np.ndarray, items: np.ndarray, n_users: int) -> np.ndarray:
    """(U, P) each user's generated items in the order given (most confident first), padded with
    `NO_HISTORY`: the pseudo-history `with_pseudo_history` reads."""
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=n_users)
    table = np.full((n_users, int(counts.max(initial=0))), NO_HISTORY, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    table[users, np.arange(len(users)) - starts[users]] = items
    return table


def with_pseudo_history(history: np.ndarray, owners: np.ndarray, pseudo_history: np.ndarray | None) -> np.ndarray:
    """(E, H) `history` rows (latest first) whose empty slots take their owner's generated items
    (`pseudo_history` (U, P)), as items older than every real one: DiffuASR's pseudo-history
    (Liu et al., 2023), which a short history reads as context; a full one is left as it is."""
    if pseudo_history is None or pseudo_history.shape[1] == 0:
        return history
    real = (history != NO_HISTORY).sum(-1)  # real items fill a prefix of each row
    slot = np.arange(history.shape[1]) - real[:, None]  # (E, H) the pseudo item an empty slot takes
    usable = (slot >= 0) & (slot < pseudo_history.shape[1])
    filled = history.copy()
    filled[usable] = pseudo_history[np.broadcast_to(owners[:, None], slot.shape)[usable], slot[usable]]
    return filled


RECENCY_DECAY = 0.5  # weight of an item relative to the one after it (benchmarks/README.md)


def history_weights(history: np.ndarray) -> np.ndarray:
    """(..., H) weights of `history` rows (latest first): decaying with age, zero where empty,
    summing to one (or zero for an empty history)."""
    weights = RECENCY_DECAY ** np.arange(history.shape[-1]) * (history != NO_HISTORY)
    return weights / np.maximum(weights.sum(-1, keepdims=True), 1e-12)


@torch.no_grad()
def history_context(item_table: Tensor, history: np.ndarray) -> Tensor:
    """(..., D) the weighted mean item vector (bias column dropped) of each `history` (..., H)
    row; zero for an empty history. Read from `item_table` (I, D + 1) without gradient."""
    weights = torch.from_numpy(history_weights(history)).to(item_table.dtype)
    vectors = item_table[torch.from_numpy(np.maximum(history, 0)), :-1]
    return (weights.unsqueeze(-2) @ vectors).squeeze(-2)


class EventContexts:
    """Every training event's history context, for a whole round in one sparse product.

    Gathering each example's H item vectors took most of a round; the weights sit in a fixed
    (events x items) CSR matrix instead, so a round costs one sparse product, far cheaper than the
    gather or a COO product."""

    def __init__(
        self, indptr: np.ndarray, items: np.ndarray, n_items: int, length: int, pseudo_history: np.ndarray | None = None
    ) -> None:
        owners = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        history = preceding_items(indptr, items, owners, np.arange(len(items)), length)  # (N, H)
        history = with_pseudo_history(history, owners, pseudo_history)
        event, slot = np.nonzero(history != NO_HISTORY)
        index = torch.from_numpy(np.stack([event, history[event, slot]]))
        values = torch.from_numpy(history_weights(history)[event, slot]).float()
        shape = (len(items), n_items)
        coo = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
        with warnings.catch_warnings():  # torch marks sparse CSR as beta; its product here beats COO's
            warnings.simplefilter("ignore", UserWarning)
            self.matrix = coo.to_sparse_csr()

    @classmethod
    def for_model(
        cls,
        model: ClientModel,
        indptr: np.ndarray,
        items: np.ndarray,
        n_items: int,
        pseudo_history: np.ndarray | None = None,
    ) -> EventContexts | None:
        """The contexts `model` reads, or None for a model without history."""
        return cls(indptr, items, n_items, model.history, pseudo_history) if model.history else None

    @torch.no_grad()
    def contexts(self, item_table: Tensor) -> Tensor:
        """(N + 1, D) each event's context from `item_table` (I, D + 1); the last row, zero, is
        the context of `NO_EVENT` (-1), so `contexts[events]` needs no mask."""
        table = item_table[:, :-1].contiguous()
        contexts = table.new_empty(self.matrix.shape[0] + 1, table.shape[1])
        torch.mm(self.matrix, table, out=contexts[:-1])  # in place: no copy of the (N, D) product
        contexts[-1] = 0.0
        return contexts


def user_contexts(
    model: ClientModel, split: Split, item_table: Tensor, stage: str, pseudo_history: np.ndarray | None = None
) -> Tensor | None:
    """(U, D) every user's history context before its `stage` item (a short history filled
    from `pseudo_history`), or None for a model without history."""
    if not model.history:
        return None
    history = recent_items(split, model.history, stage)
    history = with_pseudo_history(history, np.arange(split.n_users), pseudo_history)
    return history_context(item_table, history)
