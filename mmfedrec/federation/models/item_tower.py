"""The server-side item tower: item vectors from multimodal content plus an ID embedding.

Item content (text, images) is public, so the server owns the tower. Clients train the item
vectors they touch and upload row updates; the server averages them into a target change dV
(I, D+1) and moves the tower towards V + dV (see `TowerUpdater`); content-free models
reduce exactly to FedMF.

An item's ID vector (and ID bias) is used only once some client has held the item as a training
positive (`evidence`, summed from the uploads). Before that the item is its content alone: a
new item that every client only ever drew as a negative would otherwise sink below everything
(its ID row pushed down by negatives alone), and the content that could rank it would be fit to
that sinking target too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ContentFn = Callable[[], Tensor]  # () -> (I, D + 1) content vectors and bias, differentiable in the tower's modules


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
        content: a module whose forward() returns (I, dim + 1) content vectors and biases (fused
            multimodal features); None for ID-only models.
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
        self.register_buffer("evidence", torch.zeros(n_items))  # clients that held each item as a positive

    def known(self) -> Tensor:
        """(I, 1) 1 where the item's ID part is used: always without content, else once it has evidence."""
        if self.content is None:
            return torch.ones(self.n_items, 1)
        return (self.evidence > 0).float().unsqueeze(-1)

    def id_part(self) -> Tensor:
        """(I, D + 1) what the ID table adds to each item vector."""
        return self.id_table * self.id_mask * self.known()

    def forward(self) -> Tensor:
        """(I, D + 1) item vectors, the last column a bias."""
        vectors = self.id_part()
        if self.content is None:
            return vectors
        return vectors + self.content()


class TowerUpdater:
    """Moves the tower to where the clients moved the items.

    The averaged row update dV says where the clients want each item vector: target = V + dV.
    The ID table takes dV as is (FedMF's step) and then shrinks by `id_shrink`, handing that
    share to the content modules, which take `content_steps` Adam steps towards the target of the
    items with evidence. Over rounds the content (text, image) carries what items share and the
    ID table keeps the residual, so an item few clients touched still sits where its content
    says, and an item nobody touched is ranked by content fit on the others. Without content the
    update is exactly FedMF's.
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

    def step(self, row_update: Tensor, current: Tensor | None = None, positives: Tensor | None = None) -> None:
        """Move the tower by the averaged row update (I, D + 1); `current`: the tower's output now,
        when the caller already has it (the round's item table), so it is not formed again;
        `positives` (I,): the round's count of clients holding each item as a positive."""
        tower = self.tower
        with torch.no_grad():
            target = (tower() if current is None else current) + row_update  # (I, D + 1)
            if positives is not None and tower.content is not None:
                fresh = (tower.evidence == 0) & (positives > 0)
                tower.id_table[fresh] = 0.0  # its ID part starts where its content put it
                tower.evidence += positives
            known = tower.known()
            tower.id_table.add_(row_update * tower.id_mask * known).mul_(1.0 - self.id_shrink)
            # What the content must reach beside the (now fixed) ID part: the same gradient as
            # fitting the whole tower, without forming the ID part each step.
            content_target = target - tower.id_part()
        if self.content_optimizer is None or not known.any():
            return
        weight = known.squeeze(-1) / known.sum()  # fit on the items with evidence only
        for _ in range(self.content_steps):
            self.content_optimizer.zero_grad(set_to_none=True)
            (0.5 * ((tower.content() - content_target).pow(2).sum(-1) * weight).sum()).backward()
            self.content_optimizer.step()
