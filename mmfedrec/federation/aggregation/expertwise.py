"""Expert-wise averaging: each expert's update is weighted by how much each client routed to it.

A client that never uses expert k should not pull expert k towards its own data; weighting by
routed mass (examples x gate weight) is the MoE analogue of FedAvg's example weighting.
"""

from __future__ import annotations

from torch import Tensor

from mmfedrec.errors import MmfedrecError


def expertwise_mean(stacked: Tensor, routed_mass: Tensor) -> Tensor:
    """(K, ...) mean of per-client expert tensors (C, K, ...) weighted per expert by mass (C, K).

    result[k] = sum_c m[c, k] x[c, k] / sum_c m[c, k]; an expert nobody routed to keeps a zero update.
    """
    if stacked.shape[:2] != routed_mass.shape:
        raise MmfedrecError(
            f"expert tensor {tuple(stacked.shape)} does not match routed mass {tuple(routed_mass.shape)}"
        )
    weights = routed_mass / routed_mass.sum(0).clamp_min(1e-12)  # (C, K), columns sum to 1
    return (weights.view(*weights.shape, *[1] * (stacked.dim() - 2)) * stacked).sum(0)
