"""Byzantine-robust aggregation: coordinate-wise median and trimmed mean (Yin et al., 2018,
"Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates") and norm bounding
(Sun et al., 2019, "Can You Really Backdoor Federated Learning?").

Client weights (example counts, routed mass) are ignored on purpose: they are self-reported and
unverifiable, so weighting by them would let one attacker claim a huge weight and dominate the
statistic. Each client counts once. Item rows are aggregated per item over the clients that sent
that item, since most clients never touch most items.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmfedrec.errors import MmfedrecError

ROW_METHODS = ("median", "trimmed-mean")


def coordinate_median(stacked: Tensor) -> Tensor:
    """(...) median over clients of `stacked` (C, ...), the mean of the two middle values for even C."""
    ordered = stacked.sort(dim=0).values
    count = stacked.shape[0]
    return (ordered[(count - 1) // 2] + ordered[count // 2]) / 2


def trimmed_mean(stacked: Tensor, trim: float) -> Tensor:
    """(...) mean over clients of `stacked` (C, ...) after dropping the floor(trim * C) lowest and
    highest values of each coordinate."""
    cut = _trim_count(stacked.shape[0], trim)
    return stacked.sort(dim=0).values[cut : stacked.shape[0] - cut].mean(dim=0)


def robust_row_aggregate(
    items: Tensor, deltas: Tensor, owners: Tensor, n_items: int, method: str, trim: float = 0.1
) -> Tensor:
    """(I, D) robust per-item update from sparse row updates; items nobody sent get zero.

    A client's several updates of one item (it appears in several examples) are first summed:
    that sum is the client's update of the item, as in `sums.update_sums`. Vectorised by padding
    each item's senders to the most senders S of any item: memory O(I * S * D).

    Args:
        items: (P,) item index of each row update.
        deltas: (P, D) the row updates.
        owners: (P,) global id of the client that sent each.
        method: "median" or "trimmed-mean" (`trim` from each side, per item over its senders).
    """
    if method not in ROW_METHODS:
        raise MmfedrecError(f"row aggregation must be one of {ROW_METHODS}, got {method!r}")
    _check_trim(trim)
    if items.numel() == 0:
        return torch.zeros(n_items, deltas.shape[1], dtype=deltas.dtype)
    stride = int(owners.max()) + 1
    pairs, inverse = torch.unique(items * stride + owners, return_inverse=True)  # (N,) sorted by item, then owner
    per_client = torch.zeros(len(pairs), deltas.shape[1], dtype=deltas.dtype).index_add_(0, inverse, deltas)
    pair_items = pairs // stride  # (N,)
    senders = torch.bincount(pair_items, minlength=n_items)  # (I,)
    first = torch.cumsum(senders, 0) - senders  # (I,) start of each item's run
    slot = torch.arange(len(pairs)) - first[pair_items]  # (N,) position within the item's run
    padded = torch.full((n_items, int(senders.max()), deltas.shape[1]), math.inf, dtype=deltas.dtype)
    padded[pair_items, slot] = per_client  # (I, S, D), +inf padding sorts last
    ordered = padded.sort(dim=1).values
    count = senders.view(-1, 1, 1)  # (I, 1, 1)
    if method == "median":
        low = ordered.gather(1, ((count - 1) // 2).clamp_min(0).expand(-1, 1, deltas.shape[1]))
        high = ordered.gather(1, (count // 2).clamp_max(ordered.shape[1] - 1).expand(-1, 1, deltas.shape[1]))
        result = ((low + high) / 2).squeeze(1)
    else:
        cut = torch.floor(count * trim).long()
        position = torch.arange(ordered.shape[1]).view(1, -1, 1)
        keep = (position >= cut) & (position < count - cut)  # (I, S, 1)
        result = torch.where(keep, ordered, 0).sum(1) / (count - 2 * cut).clamp_min(1).view(-1, 1)
    return torch.where(senders.view(-1, 1) > 0, result, 0)


def _trim_count(count: int, trim: float) -> int:
    _check_trim(trim)
    return math.floor(trim * count)


def _check_trim(trim: float) -> None:
    if not 0 <= trim < 0.5:
        raise MmfedrecError(f"the trim fraction must be in [0, 0.5), got {trim}")
