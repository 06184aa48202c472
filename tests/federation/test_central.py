"""The centralised trainer: the same client models with every example on one server."""

import numpy as np
import torch

from mmfedrec.federation.engines.central import CentralTrainer
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split
from tests.federation.test_item_tower import LinearContent


def test_central_training_uses_the_id_part_of_every_item_it_trains_on() -> None:
    # A content tower uses an item's ID part once a client held it; centrally every positive is in
    # view, so the ID parts must be on from the start (else a central model is its content alone).
    full = planted_split()
    split = full.with_train(full.train_items != 0)  # item 0 is held by nobody in training
    content = LinearContent(torch.randn(split.n_items, 3), 17)
    tower = ItemTower(split.n_items, 16, content, generator=torch.Generator().manual_seed(0))
    CentralTrainer(build_model("mf", 16), tower, split, seed=0)
    held = split.item_counts() > 0
    assert 0 < held.sum() < split.n_items
    np.testing.assert_array_equal(tower.known().squeeze(-1).numpy() > 0, held)
