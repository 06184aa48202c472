"""Aggregation of sparse item-vector updates (FedMF, Chai et al., 2020).

A client only updates the vectors of items it touched; the server averages each item's
updates over the clients that sent one, so rare items are not washed out by clients that
never saw them.
"""

from __future__ import annotations

import torch
from torch import Tensor


def item_row_mean(items: Tensor, deltas: Tensor, owners: Tensor, n_items: int) -> Tensor:
    """(I, D) mean update per item over the clients that touched it.

    Args:
        items: (P,) item index of each uploaded row.
        deltas: (P, D) the row updates.
        owners: (P,) client of each row; several rows of one client for the same item count once.
    """
    total = torch.zeros(n_items, deltas.shape[-1], dtype=deltas.dtype).index_add_(0, items, deltas)
    pairs = torch.unique(owners.to(torch.int64) * n_items + items)
    senders = torch.bincount(pairs % n_items, minlength=n_items).to(deltas.dtype)  # clients per item
    return total / senders.clamp_min(1).unsqueeze(-1)
