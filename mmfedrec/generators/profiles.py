"""User preference profiles: what the denoiser sees, built only from training interactions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmfedrec.data.splits import Split


def training_histories(split: Split, users: np.ndarray) -> torch.Tensor:
    """(B, I) multi-hot of each user's training items; valid/test items never enter."""
    position = np.full(split.n_users, -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    rows = position[split.train_users]
    chosen = rows >= 0
    histories = torch.zeros(len(users), split.n_items)
    histories[torch.from_numpy(rows[chosen]), torch.from_numpy(split.train_items[chosen])] = 1.0
    return histories


@dataclass(frozen=True)
class ProfileSpace:
    """Where profiles live: the interaction vector over items, or its projection into item features.

    The interaction vector (DiffRec) suits catalogues up to a few thousand items; beyond that,
    `item_embeddings` (I, D) projects a history to the mean feature of its items, so the denoiser
    width no longer grows with the catalogue.
    """

    n_items: int
    item_embeddings: torch.Tensor | None = None  # (I, D) fused item features; None = interaction vectors
    condition_features: torch.Tensor | None = None  # (I, F) item features the condition adds; None = none

    @property
    def dim(self) -> int:
        """Profile length P that the denoiser is built for."""
        return self.n_items if self.item_embeddings is None else self.item_embeddings.shape[1]

    @property
    def condition_dim(self) -> int:
        """Length of a condition: P, plus F with `condition_features`."""
        return self.dim + (0 if self.condition_features is None else self.condition_features.shape[1])

    def target(self, histories: torch.Tensor) -> torch.Tensor:
        """(B, P) the clean profile x_0: interactions scaled to {-1, 1}, or the mean item feature."""
        if self.item_embeddings is None:
            return 2.0 * histories - 1.0
        return self._mean_feature(histories, self.item_embeddings)

    def condition(self, histories: torch.Tensor) -> torch.Tensor:
        """(B, P) what the denoiser is conditioned on: the observed multi-hot, or its mean feature.

        The multi-hot is L2-normalized so that a 3-item and a 300-item history have the same scale.
        With `condition_features`, the mean feature of the observed items follows (B, P + F): what
        the items are (text, image) as well as which they are, so that a client's few items say
        more than their identities.
        """
        condition = (
            torch.nn.functional.normalize(histories, dim=1)
            if self.item_embeddings is None
            else self._mean_feature(histories, self.item_embeddings)
        )
        if self.condition_features is None:
            return condition
        return torch.cat([condition, self._mean_feature(histories, self.condition_features)], dim=1)

    def confidence(self, profiles: torch.Tensor) -> torch.Tensor:
        """(B, I) item scores, about [0, 1], of denoised profiles (B, P).

        An interaction profile maps {-1, 1} back to {0, 1}; a projected profile scores an item by
        the cosine between profile and item feature, mapped the same way. Unclipped, so that items
        the denoiser pushes past -1 keep their order instead of tying at 0.
        """
        if self.item_embeddings is None:
            return (profiles + 1.0) / 2.0
        features = torch.nn.functional.normalize(self.item_embeddings, dim=1)
        cosine = torch.nn.functional.normalize(profiles, dim=1) @ features.T  # (B, I)
        return (cosine + 1.0) / 2.0

    @staticmethod
    def _mean_feature(histories: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        counts = histories.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
        return (histories @ features) / counts  # (B, D)
