"""FedNCF (Perifanis & Efraimidis, 2022): NeuMF (He et al., 2017) with a private user vector."""

from __future__ import annotations

import torch
from torch import Tensor


class NeuralCF:
    """score = <w_gmf, u * v> + MLP([u; v]) + bias: GMF and MLP branches share the embeddings."""

    name = "ncf"
    history = 0  # conditions on no recent items (see models/__init__.py)

    def __init__(self, dim: int, hidden: int = 32) -> None:
        self.dim = dim
        self.hidden = hidden

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        d, h = self.dim, self.hidden
        return {
            "gmf.weight": torch.ones(d) + 0.01 * torch.randn(d, generator=generator),
            "mlp.0.weight": torch.randn(2 * d, h, generator=generator) / (2 * d) ** 0.5,
            "mlp.0.bias": torch.zeros(h),
            "mlp.1.weight": 0.01 * torch.randn(h, 1, generator=generator),
        }

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {"user": 0.1 * torch.randn(n_clients, self.dim, generator=generator)}

    def scores(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor, context: Tensor | None = None
    ) -> Tensor:  # `context` is always None here: history = 0
        item, bias = rows[..., : self.dim], rows[..., self.dim]  # (C, L, D), (C, L)
        user = private["user"].unsqueeze(1).expand(-1, item.shape[1], -1)  # (C, L, D)
        gmf = ((user * item) * shared["gmf.weight"].unsqueeze(-2)).sum(-1)  # (C, L)
        hidden = torch.relu(torch.matmul(torch.cat([user, item.expand_as(user)], -1), shared["mlp.0.weight"]))
        hidden = hidden + shared["mlp.0.bias"].unsqueeze(-2)
        mlp = torch.matmul(hidden, shared["mlp.1.weight"]).squeeze(-1)  # (C, L)
        return gmf + mlp + bias

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        return private["user"].new_zeros(private["user"].shape[0])

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return None
