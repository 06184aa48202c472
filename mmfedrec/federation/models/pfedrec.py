"""PFedRec-style dual personalisation (Zhang et al., IJCAI 2023).

A private user vector and a private score function (a small MLP each client keeps), over shared
item vectors that the server aggregates and every client fine-tunes locally during its round.
"""

from __future__ import annotations

import torch
from torch import Tensor


class PersonalizedScoreFunction:
    """score = MLP_client([u * v; v]) + bias, with MLP_client never uploaded."""

    name = "pfedrec"
    history = 0  # conditions on no recent items (see models/__init__.py)

    def __init__(self, dim: int, hidden: int = 32) -> None:
        self.dim = dim
        self.hidden = hidden

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        return {}

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        d, h = self.dim, self.hidden
        return {
            "user": 0.1 * torch.randn(n_clients, d, generator=generator),
            "score.0.weight": torch.randn(n_clients, 2 * d, h, generator=generator) / (2 * d) ** 0.5,
            "score.0.bias": torch.zeros(n_clients, h),
            "score.1.weight": 0.1 * torch.randn(n_clients, h, 1, generator=generator),
        }

    def scores(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor, context: Tensor | None = None
    ) -> Tensor:  # `context` is always None here: history = 0
        item, bias = rows[..., : self.dim], rows[..., self.dim]  # (C|1, L, D)
        user = private["user"].unsqueeze(1)  # (C, 1, D)
        features = torch.cat([user * item, item.expand(user.shape[0], -1, -1)], -1)  # (C, L, 2D)
        hidden = torch.relu(torch.matmul(features, private["score.0.weight"]) + private["score.0.bias"].unsqueeze(1))
        return torch.matmul(hidden, private["score.1.weight"]).squeeze(-1) + bias  # (C, L)

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        return private["user"].new_zeros(private["user"].shape[0])

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return None
