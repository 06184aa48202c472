"""FedAvg (McMahan et al., 2017): the example-weighted mean of client tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mmfedrec.errors import MmfedrecError


def fedavg(updates: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Weighted mean of each named tensor: sum_c w_c x_c / sum_c w_c.

    Args:
        updates: one mapping of name -> tensor per client, all with the same names and shapes.
        weights: one non-negative weight per client (usually its number of training examples).
    """
    if not updates:
        raise MmfedrecError("fedavg needs at least one client update")
    if len(updates) != len(weights):
        raise MmfedrecError(f"fedavg got {len(updates)} updates but {len(weights)} weights")
    weight = torch.as_tensor(weights, dtype=torch.float64)
    total = weight.sum()
    if total <= 0:
        raise MmfedrecError("fedavg weights sum to zero")
    normalized = (weight / total).to(torch.float32)
    return {
        name: torch.einsum("c,c...->...", normalized, torch.stack([update[name] for update in updates]))
        for name in updates[0]
    }
