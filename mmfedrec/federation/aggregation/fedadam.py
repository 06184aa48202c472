"""FedAdam (Reddi et al., ICLR 2021): the server treats the averaged client update as a
pseudo-gradient and steps Adam on the global tensors."""

from __future__ import annotations

import torch
from torch import Tensor


class ServerOptimizer:
    """Applies an aggregated update to the global tensors: FedAvg (x += lr * delta) or FedAdam."""

    def __init__(self, params: dict[str, Tensor], kind: str = "fedavg", lr: float = 1.0) -> None:
        if kind not in ("fedavg", "fedadam"):
            raise ValueError(f"server optimizer must be 'fedavg' or 'fedadam', got {kind!r}")
        self.kind = kind
        self.lr = lr
        self.adam = (
            torch.optim.Adam(list(params.values()), lr=lr, betas=(0.9, 0.99), eps=1e-3) if kind == "fedadam" else None
        )

    def step(self, params: dict[str, Tensor], delta: dict[str, Tensor]) -> None:
        if self.adam is None:
            for name, update in delta.items():
                params[name].add_(update, alpha=self.lr)
            return
        for name, tensor in params.items():
            tensor.grad = -delta[name]
        self.adam.step()
