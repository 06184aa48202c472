"""The server-side item tower: item vectors from multimodal content plus an ID embedding.

Item content (text, images) is public, so the server owns the tower. Clients train the item
vectors they touch and upload row updates; the server averages them into a target change dV
(I, D+1) and moves the tower towards V + dV (see `TowerUpdater`); content-free models
reduce exactly to FedMF.
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
    """Moves the tower to where the clients moved the items.

    The averaged row update dV says where the clients want each item vector: target = V + dV.
    The ID table takes dV as is (FedMF's step) and then shrinks by `id_shrink`, handing that
    share to the content modules, which take `content_steps` Adam steps towards the target. Over
    rounds the content (text, image) carries what items share and the ID table keeps the
    residual, so an item few clients touched still sits where its content says. Without content
    the update is exactly FedMF's.
    """

    def __init__(self, tower: ItemTower, content_lr: float, content_steps: int = 5, id_shrink: float = 0.05) -> None:
        self.tower = tower
        self.content_steps = content_steps
        self.id_shrink = id_shrink if tower.content is not None else 0.0
        self.content_optimizer = (
            torch.optim.Adam(tower.content.parameters(), lr=content_lr, fused=True)
            if tower.content is not None
            else None
        )

    def step(self, row_update: Tensor, current: Tensor | None = None) -> None:
        """Move the tower by the averaged row update (I, D + 1); `current`: the tower's output now,
        when the caller already has it (the round's item table), so it is not formed again."""
        with torch.no_grad():
            target = (self.tower() if current is None else current) + row_update  # (I, D + 1)
            self.tower.id_table.add_(row_update * self.tower.id_mask).mul_(1.0 - self.id_shrink)
            # What the content must reach beside the (now fixed) ID part: the same gradient as
            # fitting the whole tower, without forming the ID part and the bias column each step.
            content_target = (target - self.tower.id_table * self.tower.id_mask)[:, :-1]
        if self.content_optimizer is None:
            return
        for _ in range(self.content_steps):
            self.content_optimizer.zero_grad(set_to_none=True)
            (0.5 * (self.tower.content() - content_target).pow(2).sum(-1).mean()).backward()
            self.content_optimizer.step()
