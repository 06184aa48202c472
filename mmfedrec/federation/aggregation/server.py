"""The server's half of a federation: global shared tensors, the item tower, and how an
aggregated update moves them. Used by the in-process engine and by the Flower ServerApp."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mmfedrec.config.tree import FederatedConfig
from mmfedrec.errors import TrainingDiverged
from mmfedrec.federation.aggregation import ServerOptimizer
from mmfedrec.federation.aggregation.sums import UpdateSums, finalize
from mmfedrec.federation.models.item_tower import ItemTower, TowerUpdater


class ServerModel:
    def __init__(
        self,
        shared: dict[str, Tensor],
        tower: ItemTower,
        optimizer: str = "fedavg",
        lr: float = 1.0,
        content_lr: float = 0.005,
        row_average: str = "senders",
        id_shrink: float = 0.05,
    ) -> None:
        self.shared = shared
        self.row_average = row_average
        self.tower = tower
        self.optimizer = ServerOptimizer(shared, optimizer, lr)
        self.tower_updater = TowerUpdater(tower, content_lr, id_shrink=id_shrink)

    @classmethod
    def for_run(cls, shared: dict[str, Tensor], tower: ItemTower, federated: FederatedConfig) -> ServerModel:
        """The server of a run with these federated settings (every engine builds it here)."""
        return cls(
            shared,
            tower,
            federated.server_optimizer,
            federated.server_lr,
            federated.content_lr,
            federated.row_average,
            federated.id_shrink,
        )

    def item_table(self) -> Tensor:
        """(I, D + 1) current item vectors, as clients download them."""
        with torch.no_grad():
            return self.tower().detach()

    def apply(self, sums: UpdateSums, item_table: Tensor | None = None) -> None:
        """Average the clients' updates and step the shared tensors and the item tower
        (`item_table`: the round's `item_table()`, if the caller has it)."""
        self.apply_delta(*finalize(sums, self.row_average), item_table, sums.row_positives)

    def apply_delta(
        self,
        delta: dict[str, Tensor],
        row_update: Tensor,
        item_table: Tensor | None = None,
        positives: Tensor | None = None,
    ) -> None:
        """Step the shared tensors by the aggregated `delta` and the tower by the row update (I, D+1)
        (`positives` (I,): clients that held each item as a positive this round, the tower's evidence).

        A non-finite update means training diverged: refuse it rather than train on NaNs."""
        broken = [
            name for name, value in [*delta.items(), ("item rows", row_update)] if not torch.isfinite(value).all()
        ]
        if broken:
            raise TrainingDiverged(
                f"the aggregated client update is NaN or inf in {', '.join(broken)}: training diverged; "
                "lower the learning rates (--lr, --row-lr, --shared-lr)"
            )
        self.optimizer.step(self.shared, delta)
        self.tower_updater.step(row_update, item_table, positives)


class ClientSampler:
    """Which clients a round selects: all of them, or a seeded fraction drawn without replacement."""

    def __init__(self, n_users: int, fraction: float, seed: int) -> None:
        self.n_users = n_users
        self.fraction = fraction
        self.rng = np.random.default_rng(seed)

    def select(self) -> np.ndarray:
        if self.fraction >= 1.0:
            return np.arange(self.n_users)
        k = max(1, round(self.fraction * self.n_users))
        return np.sort(self.rng.choice(self.n_users, size=k, replace=False))
