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
    tower = ItemTower(20, 4, LinearContent(torch.randn(20, 6), 5), generator=torch.Generator().manual_seed(0))
    update = torch.randn(20, 5)
    target = tower().detach() + update
    content_before = tower.content().detach()
    TowerUpdater(tower, content_lr=0.05, content_steps=50, id_shrink=0.5).step(update, positives=torch.ones(20))
    id_after = tower.id_part().detach()
    without_content_steps = (content_before + id_after - target).norm()
    with_content_steps = (tower().detach() - target).norm()
    assert with_content_steps < 0.9 * without_content_steps  # the content took back part of what the ID gave up


def test_an_item_without_evidence_is_its_content_alone_and_does_not_steer_the_content() -> None:
    torch.manual_seed(0)
    content = LinearContent(torch.randn(6, 3), 5)
    tower = ItemTower(6, 4, content, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(tower().detach(), content().detach())  # nobody held any item yet
    positives = torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    update = torch.randn(6, 5)
    target = tower().detach() + update
    TowerUpdater(tower, content_lr=0.05, content_steps=0, id_shrink=0.0).step(update, positives=positives)
    after = tower().detach()
    torch.testing.assert_close(after[:2], target[:2])  # a fresh item's ID part starts at its update
    torch.testing.assert_close(after[2:], content()[2:].detach())  # the rest: content, negatives ignored


def test_the_content_is_fit_on_items_with_evidence_only() -> None:
    torch.manual_seed(0)
    features, positives = torch.randn(6, 3), torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    update = torch.randn(6, 5)
    pushed = update.clone()
    pushed[2:] += 100.0  # a huge push on items nobody holds (negatives only) must not move the content

    def fitted_content(row_update: torch.Tensor) -> torch.Tensor:
        tower = ItemTower(6, 4, LinearContent(features, 5), generator=torch.Generator().manual_seed(0))
        torch.manual_seed(1)
        tower.content.project.reset_parameters()  # the same start for both
        TowerUpdater(tower, content_lr=0.05, content_steps=5).step(row_update, positives=positives)
        return tower.content.project.weight.detach()

    torch.testing.assert_close(fitted_content(pushed), fitted_content(update))


def test_id_vectors_are_learned_when_the_median_item_has_enough_interactions() -> None:
    import numpy as np

    from mmfedrec.federation.engines.runner import uses_id_vectors
    from tests.federation.helpers import planted_split

    split = planted_split()
    per_item = np.bincount(split.train_items, minlength=split.n_items)
    assert np.median(per_item) >= 3 and uses_id_vectors("auto", split)
    once = np.unique(split.train_items, return_index=True)[1]  # each item's first event only
    sparse = split.with_train(np.isin(np.arange(len(split.train_items)), once))
    assert not uses_id_vectors("auto", sparse)  # every item bought once: H&M's regime
    assert uses_id_vectors("on", sparse) and not uses_id_vectors("off", split)
