"""What every client model is: one vocabulary for engines, evaluation, Flower and the app.

Every tensor a client owns has a leading client dimension C (see `mmfedrec.federation.models`);
`scores` is the one scoring interface: candidates of each client (rows (C|1, L, D+1)), or the
whole catalogue when `rows` is the item table.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class ClientModel(Protocol):
    history: int  # recent items that condition the user state (0: none)

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]: ...

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]: ...

    def scores(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor, context: Tensor | None = None
    ) -> Tensor: ...

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor: ...

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None: ...


@runtime_checkable
class DotProductModel(ClientModel, Protocol):
    """A model whose score is the dot product of an item row with one vector per client (MF, ours):
    local training then steps item rows from two factors, without a gradient per row."""

    def client_vector(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor: ...


@runtime_checkable
class RoutedModel(ClientModel, Protocol):
    """A mixture of experts: the router's weights per client are what the app shows."""

    def gate(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor: ...
