"""FedMF-style matrix factorisation (Chai et al., 2020): private user vector, shared item vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfedrec.federation.models.scoring import row_dot


class MatrixFactorization:
    """score(u, i) = <user_u, item_i> + bias_i."""

    name = "mf"
    history = 0  # conditions on no recent items (see models/__init__.py)

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        return {}

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {"user": 0.1 * torch.randn(n_clients, self.dim, generator=generator)}

    def client_vector(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        """(C, D+1) user vectors with a trailing 1 that meets the item bias."""
        return torch.nn.functional.pad(private["user"], (0, 1), value=1.0)

    def scores(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor, context: Tensor | None = None
    ) -> Tensor:  # `context` is always None here: history = 0
        return row_dot(rows, self.client_vector(private, shared))  # (C, L)

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        return private["user"].new_zeros(private["user"].shape[0])

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return None
