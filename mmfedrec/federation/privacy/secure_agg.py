"""Secure aggregation by pairwise additive masking (Bonawitz et al., 2017, "Practical Secure
Aggregation for Privacy-Preserving Machine Learning"), on a sparse pairing graph (Bell et al.,
2020, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead").

Updates are encoded as fixed-point integers modulo 2^64 (scale 2^20). Each pair of clients (i, j)
shares a mask m_ij; the client with the smaller id adds it and the other subtracts it, so each
masked upload is uniform over 64-bit integers while the masks cancel exactly in the sum.

Pairing with every other client costs O(C^2 P) mask draws per round. By default each client is
paired with `2 * ceil(log2(C))` neighbours on a ring in a pseudo-random order (a Harary graph on
a random permutation), which costs O(C log C * P): C = 1000 clients with P = 1e5 values draw
1e9 64-bit words and adds 2e9 (seconds on one core, with the (C, P) output itself 0.8 GB). Pass `neighbours=len(cohort)` for Bonawitz's complete graph.

In-process simulation only: pair seeds come from the round key, which stands in for the
Diffie-Hellman key agreement between the two clients (so the simulated server could recompute
them), and masks are drawn with SFC64, not a cryptographic stream cipher.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.local.batches import counter_hash

SCALE = 2.0**20  # fixed-point resolution: quantisation error <= 2^-21 per value
LIMIT = 2.0**42  # |value| bound, so that sums of up to 2^20 clients stay below 2^63 / SCALE
_ORDER_SLOT = 0x4F52444552  # hash slot of a client's place on the pairing ring


def mask_updates(
    flat: Tensor,
    client_ids: Tensor | np.ndarray,
    round_key: int,
    cohort: Tensor | np.ndarray | None = None,
    neighbours: int | None = None,
) -> Tensor:
    """(C, P) int64 masked fixed-point uploads of `flat` (C, P) float for clients `client_ids`.

    Args:
        client_ids: global ids of the rows of `flat`; masks depend on ids, not on row order.
        round_key: the round's secret from which pair seeds are derived (`batches.round_key`).
        cohort: every client of the round whose masks must cancel (default: `client_ids`); lets
            a round mask its clients chunk by chunk.
        neighbours: partners per client (rounded up to even); None for 2 * ceil(log2(cohort
            size)); the cohort size or more for the complete graph.
    """
    ids = _ids(client_ids)
    cohort_ids = ids if cohort is None else _ids(cohort)
    if len(np.unique(ids)) != len(ids) or not np.isin(ids, cohort_ids).all():
        raise MmfedrecError("secure aggregation: client ids must be distinct members of the cohort")
    masked = encode_fixed(flat)  # (C, P) uint64
    row = {int(client): index for index, client in enumerate(ids)}
    for low, high in _pairs(cohort_ids, round_key, neighbours):
        in_low, in_high = row.get(int(low)), row.get(int(high))
        if in_low is None and in_high is None:
            continue
        mask = _pair_mask(round_key, low, high, masked.shape[1])
        with np.errstate(over="ignore"):
            if in_low is not None:
                masked[in_low] += mask
            if in_high is not None:
                masked[in_high] -= mask
    return torch.from_numpy(masked.view(np.int64))


def masked_total(masked: Tensor) -> Tensor:
    """(P,) int64 sum over all leading dims, wrapping modulo 2^64 like the masks do.

    Chunks of a round can be totalled separately and their totals stacked and totalled again.
    """
    values = masked.numpy().view(np.uint64).reshape(-1, masked.shape[-1])
    return torch.from_numpy(np.add.reduce(values, axis=0, dtype=np.uint64).view(np.int64))


def unmask_sum(masked: Tensor) -> Tensor:
    """(P,) float64 sum of the clients' true updates from their masked uploads (..., P)."""
    return masked_total(masked).double() / SCALE


def dropout_correction(
    dropped: Tensor | np.ndarray,
    cohort: Tensor | np.ndarray,
    round_key: int,
    n_values: int,
    neighbours: int | None = None,
) -> Tensor:
    """(P,) int64 to add to the masked total when `dropped` cohort members never uploaded.

    Their partners' masks toward them no longer cancel. In the protocol the survivors reveal the
    dropped clients' shared seeds (Shamir shares) and the server removes those masks; here the
    server recomputes them from the pair seeds, which gives the same correction.
    """
    gone = set(_ids(dropped).tolist())
    correction = np.zeros(n_values, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for low, high in _pairs(_ids(cohort), round_key, neighbours):
            if (int(low) in gone) == (int(high) in gone):
                continue
            mask = _pair_mask(round_key, low, high, n_values)
            if int(low) in gone:  # the surviving high partner subtracted it: add it back
                correction += mask
            else:
                correction -= mask
    return torch.from_numpy(correction.view(np.int64))


def _ids(clients: Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(clients.numpy() if isinstance(clients, Tensor) else clients, dtype=np.int64).reshape(-1)


def encode_fixed(flat: Tensor) -> np.ndarray:
    """(C, P) fixed-point values as uint64 (two's complement), rejecting what cannot be encoded."""
    largest = flat.detach().abs().amax() if flat.numel() else torch.tensor(0.0)  # NaN if any value is NaN
    if not torch.isfinite(largest):
        raise MmfedrecError("secure aggregation: an update has NaN or infinite values (validate before masking)")
    if largest >= LIMIT:
        raise MmfedrecError(f"secure aggregation: an update value exceeds {LIMIT:.3g} (bound norms before masking)")
    fixed = flat.detach().to(torch.float64).mul_(SCALE).round_().to(torch.int64)
    return fixed.numpy().view(np.uint64)


def _pairs(cohort: np.ndarray, round_key: int, neighbours: int | None) -> list[tuple[int, int]]:
    """(low id, high id) of every masking pair of the cohort, each once."""
    size = len(cohort)
    if neighbours is None:
        neighbours = 2 * math.ceil(math.log2(max(size, 2)))
    if neighbours >= size - 1:
        ordered = np.sort(cohort)
        return [(int(a), int(b)) for k, a in enumerate(ordered) for b in ordered[k + 1 :]]
    if neighbours < 1:
        raise MmfedrecError(f"secure aggregation needs at least 1 neighbour per client, got {neighbours}")
    ring = cohort[np.lexsort((cohort, counter_hash(round_key, cohort, _ORDER_SLOT)))]
    pairs = set()
    for offset in range(1, (neighbours + 1) // 2 + 1):  # partners at ring distance <= offset
        for a, b in zip(ring, np.roll(ring, -offset), strict=True):
            pairs.add((int(min(a, b)), int(max(a, b))))
    return sorted(pairs)


def _pair_mask(round_key: int, low: int, high: int, n_values: int) -> np.ndarray:
    """The (P,) uint64 mask shared by clients `low` < `high` in this round."""
    seed = int(counter_hash(round_key, low, high))
    return np.random.SFC64(seed).random_raw(n_values)
