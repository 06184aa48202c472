"""The one scorer: scores of every item for a batch of users, as the evaluator, central training,
the Flower nodes and the app rank them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mmfedrec.evaluation.protocols import Scorer
from mmfedrec.federation.models.protocol import ClientModel


def client_scorer(
    model: ClientModel,
    shared: dict[str, Tensor],
    private: dict[str, Tensor],
    rows: Tensor | Callable[[Tensor], Tensor],
    contexts: Tensor | None = None,
    position: Callable[[np.ndarray], Tensor] | None = None,
) -> Scorer:
    """Score users from their private state and the global model.

    Args:
        private: name -> (U, ...) the users' private tensors; `position` maps user indices to their
            rows (default: the indices themselves; a Flower silo holds only its own users).
        rows: the item table (I, D+1) everyone ranks with, or a function of the user indices (B,)
            returning each user's own table (B, I, D+1) (local-only and personal item vectors).
        contexts: (users, D) each user's history context for a history-aware model, by user index.
    """
    shared_one = {name: value.detach().unsqueeze(0) for name, value in shared.items()}

    def score(users: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(np.asarray(users, dtype=np.int64))
        own = index if position is None else position(users)
        with torch.no_grad():
            user_private = {name: value.detach()[own] for name, value in private.items()}
            user_rows = rows(index) if callable(rows) else rows.detach().unsqueeze(0)
            user_context = None if contexts is None else contexts[index]
            return model.scores(user_private, shared_one, user_rows, user_context).numpy()

    return score
