"""Diffusion augmentation: complete sparse profiles with a federatedly trained profile denoiser."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError
from mmfedrec.generators.augmenters.base import Augmenter
from mmfedrec.generators.central import CentralDenoiserConfig, train_central
from mmfedrec.generators.denoiser import ProfileDenoiser
from mmfedrec.generators.federated import FederatedDenoiserConfig, train_federated
from mmfedrec.generators.policy import AugmentationPolicy, PseudoInteractions
from mmfedrec.generators.profiles import ProfileSpace, training_histories
from mmfedrec.generators.scheduling import sampling_scheduler, training_scheduler
from mmfedrec.generators.synthesizer import ProfileSynthesizer

TRAINING_MODES = ("federated", "central")


@dataclass(frozen=True)
class DiffusionAugmenterConfig:
    hidden_dim: int = 128  # denoiser width
    training: str = "federated"  # "federated" (FedAvg, no profile leaves a client) or "central" (reference)
    federated: FederatedDenoiserConfig = field(default_factory=FederatedDenoiserConfig)
    central: CentralDenoiserConfig = field(default_factory=CentralDenoiserConfig)
    # Measured on ML-100K (benchmarks/augment_quality.py): one DDIM step from pure noise, i.e. the
    # denoiser's conditional mean profile, ranks held-out items best; more steps draw one sample
    # (noisier ranking) and partial strength starts from the sparse profile, which is off-distribution.
    strength: float = 1.0  # how far the observed profile is noised before denoising (1 = pure noise)
    num_inference_steps: int = 1  # DDIM steps over the whole schedule
    batch_size: int = 1024  # users completed per sampling call
    seed: int = 0  # seeds the denoiser's initialization and the sampling noise


class DiffusionAugmenter(Augmenter):
    """Fits a denoiser on the dense clients' training profiles, then completes sparse ones.

    Args:
        item_embeddings: (I, D) item features; given, profiles live in that space (large catalogues).
        synthesizer: an already fitted synthesizer; None fits one on the first `augment`.
        condition_features: (I, F) item features (fused text and image) whose mean over the
            client's items conditions the denoiser beside the items themselves.
    """

    def __init__(
        self,
        config: DiffusionAugmenterConfig | None = None,
        item_embeddings: torch.Tensor | None = None,
        synthesizer: ProfileSynthesizer | None = None,
        condition_features: torch.Tensor | None = None,
    ) -> None:
        self.config = config or DiffusionAugmenterConfig()
        if self.config.training not in TRAINING_MODES:
            raise MmfedrecError(f"training must be one of {TRAINING_MODES}, got {self.config.training!r}")
        self.item_embeddings = item_embeddings
        self.condition_features = condition_features
        self.synthesizer = synthesizer
        self.training_losses: list[float] = []

    def fit(self, split: Split, policy: AugmentationPolicy) -> DiffusionAugmenter:
        """Train the denoiser on clients with more than `policy.sparse_max` training interactions."""
        dense = np.flatnonzero(split.train_counts() > policy.sparse_max)
        if len(dense) == 0:
            raise MmfedrecError(f"no client has more than {policy.sparse_max} training interactions to learn from")
        space = ProfileSpace(split.n_items, self.item_embeddings, self.condition_features)
        histories = training_histories(split, dense)  # (C, I)
        weights = histories.sum(dim=1)  # (C,) FedAvg weight: the client's number of examples
        torch.manual_seed(self.config.seed)
        denoiser = ProfileDenoiser(space.dim, hidden_dim=self.config.hidden_dim, condition_dim=space.condition_dim)
        scheduler = training_scheduler()
        if self.config.training == "federated":
            self.training_losses = train_federated(
                denoiser, scheduler, space, histories, weights, self.config.federated
            )
        else:
            self.training_losses = train_central(denoiser, scheduler, space, histories, weights, self.config.central)
        self.synthesizer = ProfileSynthesizer(denoiser.eval(), sampling_scheduler(scheduler), space)
        return self

    def scores(self, split: Split, users: np.ndarray) -> np.ndarray:
        if self.synthesizer is None:
            raise MmfedrecError("DiffusionAugmenter is not fitted: call fit(split, policy) first")
        generator = torch.Generator().manual_seed(self.config.seed)
        out = np.empty((len(users), split.n_items), dtype=np.float32)
        for start in range(0, len(users), self.config.batch_size):
            batch = users[start : start + self.config.batch_size]
            out[start : start + len(batch)] = self.synthesizer(
                training_histories(split, batch),
                strength=self.config.strength,
                num_inference_steps=self.config.num_inference_steps,
                generator=generator,
            ).numpy()
        return out

    def augment(self, split: Split, policy: AugmentationPolicy) -> PseudoInteractions:
        """Fit on this split's dense clients when no synthesizer was given, then augment sparse ones."""
        if self.synthesizer is None:
            self.fit(split, policy)
        return super().augment(split, policy)
