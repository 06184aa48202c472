import torch
from torch import nn

from mmfedrec.federation.models.item_tower import ItemTower, TowerUpdater


class LinearContent(nn.Module):
    def __init__(self, features: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.features = features
        self.project = nn.Linear(features.shape[1], dim)

    def forward(self) -> torch.Tensor:
        return self.project(self.features)


def test_without_content_the_id_table_takes_the_update_exactly() -> None:
    tower = ItemTower(5, 3, generator=torch.Generator().manual_seed(0))
    before = tower().detach().clone()
    update = torch.randn(5, 4)
    TowerUpdater(tower, content_lr=0.01).step(update)
    torch.testing.assert_close(tower().detach(), before + update)


def test_content_moves_towards_where_clients_put_the_items() -> None:
    torch.manual_seed(0)
    tower = ItemTower(20, 4, LinearContent(torch.randn(20, 6), 4), generator=torch.Generator().manual_seed(0))
    update = torch.randn(20, 5)
    target = tower().detach() + update
    content_before = torch.nn.functional.pad(tower.content().detach(), (0, 1))
    TowerUpdater(tower, content_lr=0.05, content_steps=50, id_shrink=0.5).step(update)
    id_after = tower.id_table.detach() * tower.id_mask
    without_content_steps = (content_before + id_after - target).norm()
    with_content_steps = (tower().detach() - target).norm()
    assert with_content_steps < 0.9 * without_content_steps  # the content took back part of what the ID gave up
