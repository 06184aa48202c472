"""Communication accounting, from the tensors a client actually sends and receives."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfedrec.federation.local.training import LocalResult, sum_by_key

ITEM_INDEX_BYTES = 8  # an item row is sent as an int64 index and its vector


def client_upload(result: LocalResult, k: int) -> dict[str, Tensor]:
    """The exact message client k of a chunk sends: shared deltas, one update per touched item
    (indices + vectors, rows of the same item merged), routed mass, its example count and which
    items it held as positives (the tower's evidence; a row's bias update already tells a
    positive from a sampled negative, so this adds nothing a curious server could not read)."""
    mask = result.row_mask[k]
    unique_items, merged = sum_by_key(result.row_items[k][mask], result.row_delta[k][mask])
    message = {f"shared.{name}": delta[k] for name, delta in result.shared_delta.items()}
    message["items.index"] = unique_items
    message["items.delta"] = merged
    if result.routed_mass is not None:
        message["routed_mass"] = result.routed_mass[k]
    message["n_examples"] = result.n_examples[k : k + 1].to(torch.int64)
    message["items.positive"] = result.positive_items(k)
    return message


def message_nbytes(message: dict[str, Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in message.values())


def upload_nbytes(result: LocalResult, touched: Tensor) -> Tensor:
    """(C,) bytes each client of the chunk uploads; equals `message_nbytes(client_upload(...))`,
    computed without building the messages (`touched`: `result.touched_items(n_items)`)."""
    dense = sum(d[0].numel() * d.element_size() for d in result.shared_delta.values())
    unique_rows = touched.sum(1)
    row_bytes = ITEM_INDEX_BYTES + result.row_update_nbytes
    return dense + unique_rows * row_bytes + counts_nbytes(result, touched.shape[1])


def counts_nbytes(result: LocalResult, n_items: int) -> Tensor:
    """(C,) bytes of what every upload carries besides the updates: routed mass, example count and
    positive items (int64 each)."""
    routed = 0 if result.routed_mass is None else result.routed_mass[0].numel() * result.routed_mass.element_size()
    positives = result.held_items(n_items).sum(1)
    return routed + 8 + ITEM_INDEX_BYTES * positives  # n_examples as int64


def download_nbytes(shared: dict[str, Tensor], item_table: Tensor) -> int:
    """Bytes a client downloads per round: the global shared tensors and the item vectors
    (all of them, so the device can rank the whole catalogue locally)."""
    return sum(t.numel() * t.element_size() for t in shared.values()) + item_table.numel() * item_table.element_size()
