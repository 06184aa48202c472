"""FedMF-style matrix factorisation (Chai et al., 2020): private user vector, shared item vectors."""

from __future__ import annotations

import torch
from torch import Tensor


class MatrixFactorization:
    """score(u, i) = <user_u, item_i> + bias_i."""

    name = "mf"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        return {}

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {"user": 0.1 * torch.randn(n_clients, self.dim, generator=generator)}

    def scores(self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor) -> Tensor:
        user = torch.nn.functional.pad(private["user"], (0, 1), value=1.0)  # (C, D+1): 1 meets the bias
        return torch.matmul(rows, user.unsqueeze(-1)).squeeze(-1)  # (C, L)

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        return private["user"].new_zeros(private["user"].shape[0])

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return None
