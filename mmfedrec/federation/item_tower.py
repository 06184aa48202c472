"""The server-side item tower: item vectors from multimodal content plus an ID embedding.

Item content (text, images) is public, so the server owns the tower. Clients train the item
vectors they touch and upload row updates; the server averages them into a target change dV
(I, D+1) and moves the tower along it by the chain rule: a step on -<V(theta), dV>. The ID
table moves by exactly dV (learning rate 1, so content-free models reduce to FedMF), while
the fusion and projections take an Adam step of `content_lr` along the direction that best
explains dV.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ContentFn = Callable[[], Tensor]  # () -> (I, D) content vectors, differentiable in the tower's modules


class ItemTower(nn.Module):
    def __init__(
        self,
        n_items: int,
        dim: int,
        content: nn.Module | None = None,
        use_id: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        """Args:
        content: a module whose forward() returns (I, dim) content vectors (fused multimodal
            features); None for ID-only models.
        use_id: learn a per-item ID vector (always on for content-free models).
        """
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.content = content
        id_scale = 0.1 if use_id or content is None else 0.0
        self.id_table = nn.Parameter(id_scale * torch.randn(n_items, dim + 1, generator=generator))  # last col: bias
        self.id_table.data[:, -1] = 0.0
        if not use_id and content is not None:
            self.id_table.data[:, :-1] = 0.0
            self.id_mask = torch.cat([torch.zeros(dim), torch.ones(1)])  # keep the bias only
        else:
            self.id_mask = torch.ones(dim + 1)

    def forward(self) -> Tensor:
        """(I, D + 1) item vectors, the last column a bias."""
        vectors = self.id_table * self.id_mask
        if self.content is not None:
            vectors = vectors + nn.functional.pad(self.content(), (0, 1))
        return vectors


class TowerUpdater:
    """Moves the tower along an aggregated item-vector update (see the module docstring).

    The ID table takes the averaged update as is (SGD, learning rate 1: FedMF); the content
    modules treat -J^T dV as a pseudo-gradient for Adam, whose scale-free steps suit a direction
    whose size depends on how many clients touched each item.
    """

    def __init__(self, tower: ItemTower, content_lr: float) -> None:
        self.tower = tower
        self.id_optimizer = torch.optim.SGD([tower.id_table], lr=1.0)
        self.content_optimizer = (
            torch.optim.Adam(tower.content.parameters(), lr=content_lr) if tower.content is not None else None
        )

    def step(self, row_update: Tensor) -> None:
        self.id_optimizer.zero_grad(set_to_none=True)
        if self.content_optimizer is not None:
            self.content_optimizer.zero_grad(set_to_none=True)
        (-(self.tower() * row_update).sum()).backward()
        self.tower.id_table.grad.mul_(self.tower.id_mask)
        self.id_optimizer.step()
        if self.content_optimizer is not None:
            self.content_optimizer.step()
