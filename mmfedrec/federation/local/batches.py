"""Per-round client training data: positives (+ pseudo positives) with sampled negatives.

Built once per round with vectorised numpy, shared by every engine. Randomness is counter-based:
each draw is a hash of (round key, client, example, slot), so a client's examples do not depend
on which other clients are drawn with it. The batched engine, the per-client loop and a Flower
SuperNode holding any subset of users therefore train on identical examples. An example is one
positive and its `n_negatives` negatives; examples are shuffled within each client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmfedrec.data.splits import NO_ITEM, Split

NO_EVENT = -1  # the training event of a pseudo positive or of padding: none


@dataclass(frozen=True)
class RoundExamples:
    """Flat examples grouped by client (clients in the order given)."""

    clients: np.ndarray  # (C,) client (= user) indices
    counts: np.ndarray  # (C,) examples per client
    positives: np.ndarray  # (E,) item index of each example's positive
    negatives: np.ndarray  # (E, n_neg) sampled negative items
    negative_ok: np.ndarray  # (E, n_neg) False where the draw hit one of the user's training items
    weights: np.ndarray  # (E,) 1 for real interactions, the policy weight for pseudo ones
    events: np.ndarray  # (E,) each positive's position in the CSR training items (NO_EVENT: pseudo)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)])


@dataclass(frozen=True)
class PaddedChunk:
    """Examples of a group of clients padded to the same length: (C, L) tensors."""

    rows: np.ndarray  # (C,) positions of these clients in RoundExamples.clients
    clients: torch.Tensor  # (C,) client indices
    items: torch.Tensor  # (C, L, 1 + n_neg) positive first, then negatives
    item_mask: torch.Tensor  # (C, L, 1 + n_neg) False for padding and collided negatives
    weights: torch.Tensor  # (C, L) example weight, 0 for padding
    events: torch.Tensor  # (C, L) each example's training event (NO_EVENT for padding and pseudo ones)


def build_round_examples(
    clients: np.ndarray,
    indptr: np.ndarray,
    train_items: np.ndarray,
    n_items: int,
    n_negatives: int,
    round_key: int,
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    known: KnownPairs | None = None,
) -> RoundExamples:
    """Draw this round's examples for `clients` from their training items (CSR by user).

    Args:
        round_key: `round_key(seed, round)`; the same key gives the same examples.
        pseudo: optional (users, items, weights) pseudo-interactions added as weighted positives.
        known: pairs no negative may hit (every user's training items), built once per run
            (else built here for `clients`).
    """
    owner, events = csr_index(indptr, clients)
    positives = train_items[events]
    weights = np.ones(len(positives), dtype=np.float32)
    if pseudo is not None:
        position = {int(c): k for k, c in enumerate(clients)}
        take = np.array([int(u) in position for u in pseudo[0]], dtype=bool)
        owner = np.concatenate([owner, np.array([position[int(u)] for u in pseudo[0][take]], dtype=np.int64)])
        positives = np.concatenate([positives, pseudo[1][take]])
        weights = np.concatenate([weights, pseudo[2][take].astype(np.float32)])
        events = np.concatenate([events, np.full(int(take.sum()), NO_EVENT)])
        grouped = np.argsort(owner, kind="stable")  # pseudo positives join their client's group
        owner, positives, weights, events = owner[grouped], positives[grouped], weights[grouped], events[grouped]
    client = clients[owner].astype(np.uint64)
    position = _position_in_group(owner)
    example_hash = counter_hash(round_key, client, position)  # (E,) the draws below extend it by their slot
    # Group by client, shuffle within by the hash's top 32 bits: one sort key, faster than lexsort.
    shuffle_keys = counter_hash(SHUFFLE_SLOT, start=example_hash) >> np.uint64(32)
    keys = ((owner.astype(np.uint64) << np.uint64(32)) | shuffle_keys).view(np.int64)  # below 2^63: same order
    order = torch.sort(torch.from_numpy(keys), stable=True).indices.numpy()  # numpy's stable argsort's order, faster
    positives, weights, events = positives[order], weights[order], events[order]  # owners stay grouped: unchanged

    slots = np.arange(1, n_negatives + 1, dtype=np.uint64)
    draws = counter_hash(slots[None, :], start=example_hash[:, None])
    negatives = (draws % np.uint64(n_items)).astype(np.int64)  # (E, n_neg); modulo bias < 1e-15
    if known is None:
        known = KnownPairs.from_csr(indptr, train_items, clients, n_items, int(clients.max(initial=0)) + 1)
    negative_ok = ~known.contains(clients[owner][:, None] * n_items + negatives)
    return RoundExamples(
        clients=clients,
        counts=np.bincount(owner, minlength=len(clients)),
        positives=positives.astype(np.int64, copy=False),
        negatives=negatives,
        negative_ok=negative_ok,
        weights=weights,
        events=events,
    )


SHUFFLE_SLOT = np.uint64(0)
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (Steele et al., 2014): a bijective 64-bit mix, wrapping arithmetic."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment; also the hash's starting state


def counter_hash(*parts: object, start: np.ndarray | np.uint64 = GOLDEN_GAMMA) -> np.ndarray:
    """A uniform 64-bit value for each combination of the (broadcast) integer `parts`.

    `start`: the hash of earlier parts, to extend: `counter_hash(b, start=counter_hash(a))` equals
    `counter_hash(a, b)`, so draws that share leading parts hash them once."""
    with np.errstate(over="ignore"):
        state = start
        for part in parts:
            state = _mix64(np.bitwise_xor(state, np.asarray(part, dtype=np.uint64) & _MASK) + GOLDEN_GAMMA)
        return state


def round_key(seed: int, round_index: int) -> int:
    """The key of one round's draws for one run seed."""
    return int(counter_hash(seed, round_index, 0x524F554E44))


def _position_in_group(owner: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) `owner` values, as uint64."""
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    counts = np.diff(np.r_[starts, len(owner)])
    return (np.arange(len(owner)) - np.repeat(starts, counts)).astype(np.uint64)


BITMAP_MAX_PAIRS = 1 << 26  # one byte per (client, item) pair up to 64 MB; ML-1M needs 22 MB


@dataclass(frozen=True)
class KnownPairs:
    """The (client, item) pairs a negative must avoid, as keys `client * n_items + item`.

    A lookup is one read of a byte map; when clients x items exceed `BITMAP_MAX_PAIRS` a binary
    search over the sorted keys answers instead (on ML-100K the byte map made the lookups far cheaper).
    """

    sorted_keys: np.ndarray
    bitmap: np.ndarray | None  # (n_clients * n_items,) bool, or None when too large

    @classmethod
    def from_csr(
        cls, indptr: np.ndarray, items: np.ndarray, clients: np.ndarray, n_items: int, n_clients: int
    ) -> KnownPairs:
        """The pairs of `clients` (global indices < n_clients) and their CSR `items`."""
        owner, values = csr_gather(indptr, items, clients)
        return cls.from_keys(clients[owner] * n_items + values, n_clients * n_items)

    @classmethod
    def from_keys(cls, keys: np.ndarray, n_pairs: int) -> KnownPairs:
        """Pairs given as keys `client * n_items + item` below `n_pairs` (duplicates are fine)."""
        keys = np.unique(keys)
        if n_pairs > BITMAP_MAX_PAIRS:
            return cls(keys, None)
        bitmap = np.zeros(n_pairs, dtype=bool)
        bitmap[keys] = True
        return cls(keys, bitmap)

    @classmethod
    def for_split(cls, split: Split, include_heldout: bool = False) -> KnownPairs:
        """Every user's training items; with `include_heldout` also their validation and test items.

        The second is how PFedRec's public code samples training negatives (from items the user
        never interacted with, held-out ones included): training then reads held-out labels (the
        test item is never pushed down, its 99 rivals are), so it only serves to compare with
        numbers published that way.
        """
        keys = [split.train_users * split.n_items + split.train_items]
        if include_heldout:
            for held_out in (split.valid_items, split.test_items):
                users = np.flatnonzero(held_out != NO_ITEM)
                keys.append(users * split.n_items + held_out[users])
        return cls.from_keys(np.concatenate(keys), split.n_users * split.n_items)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if self.bitmap is not None:
            return self.bitmap[keys]
        found = np.searchsorted(self.sorted_keys, keys)
        return self.sorted_keys[np.minimum(found, len(self.sorted_keys) - 1)] == keys


def csr_index(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR rows `rows` concatenated: (owner position (N,), index into the values (N,))."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return owner, np.repeat(indptr[rows] - first, counts) + np.arange(counts.sum())


def csr_gather(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the CSR rows `rows` of `values`: (owner position (N,), values (N,))."""
    owner, index = csr_index(indptr, rows)
    return owner, values[index]


def pad_chunks(examples: RoundExamples, max_cells: int) -> list[PaddedChunk]:
    """Group clients of similar size and pad each group to its longest client.

    Clients go largest first, each chunk taking the next ones while they fit in `max_cells` padded
    examples (C * L), which bounds memory whatever the number of clients. A chunk takes as many
    local steps as its longest client needs, so the longest clients share one chunk. On ML-100K:
    18 local steps a round at 2^16 cells (19 grouping from the smallest), 16 at 2^17 (26).
    """
    order = np.argsort(-examples.counts, kind="stable")
    table = _ExampleTable.of(examples)
    chunks: list[PaddedChunk] = []
    start = 0
    while start < len(order):
        longest = max(1, int(examples.counts[order[start]]))
        end = min(len(order), start + max(1, max_cells // longest))
        chunks.append(table.pad(order[start:end]))  # largest first: see local_train
        start = end
    return chunks


def single_client_chunks(examples: RoundExamples) -> list[PaddedChunk]:
    """One unpadded chunk per client: what the reference loop trains on."""
    table = _ExampleTable.of(examples)
    return [table.pad(np.array([k])) for k in range(len(examples.clients))]


@dataclass(frozen=True)
class _ExampleTable:
    """A round's examples as rows, plus one blank row (index E) that every padding cell reads:
    a chunk is then one row gather per array (`np.take`, faster than fancy indexing on 2D rows)."""

    examples: RoundExamples
    offsets: np.ndarray  # (C + 1,) where each client's examples start
    items: np.ndarray  # (E + 1, 1 + n_neg) positive first; the blank row: item 0
    item_mask: np.ndarray  # (E + 1, 1 + n_neg) False for collided negatives and the blank row
    weights: np.ndarray  # (E + 1,) 0 for the blank row
    events: np.ndarray  # (E + 1,) NO_EVENT for the blank row

    @classmethod
    def of(cls, examples: RoundExamples) -> _ExampleTable:
        n_examples, width = len(examples.positives), 1 + examples.negatives.shape[1]
        items = np.zeros((n_examples + 1, width), dtype=np.int64)
        items[:-1, 0], items[:-1, 1:] = examples.positives, examples.negatives
        item_mask = np.zeros((n_examples + 1, width), dtype=bool)
        item_mask[:-1, 0], item_mask[:-1, 1:] = True, examples.negative_ok
        weights = np.append(examples.weights, np.float32(0.0))
        events = np.append(examples.events, NO_EVENT)
        return cls(examples, examples.offsets, items, item_mask, weights, events)

    def pad(self, rows: np.ndarray) -> PaddedChunk:
        """The examples of clients `rows` as (C, L) tensors, each client's examples first in its row."""
        counts = self.examples.counts[rows]
        shape = (len(rows), max(1, int(counts.max())))
        within = np.arange(shape[1])
        blank = len(self.weights) - 1
        source = np.where(within < counts[:, None], self.offsets[rows, None] + within, blank).ravel()  # (C * L,)
        return PaddedChunk(
            rows=rows,
            clients=torch.from_numpy(self.examples.clients[rows]),
            items=torch.from_numpy(np.take(self.items, source, axis=0)).view(*shape, -1),
            item_mask=torch.from_numpy(np.take(self.item_mask, source, axis=0)).view(*shape, -1),
            weights=torch.from_numpy(np.take(self.weights, source)).view(shape),
            events=torch.from_numpy(np.take(self.events, source)).view(shape),
        )
