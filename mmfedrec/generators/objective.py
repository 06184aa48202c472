"""The profile-completion objective: denoise a full profile given a randomly masked copy of it.

Training on dense clients' profiles with observed items dropped from the condition teaches the
denoiser to complete a sparse history at sampling time (condition = the sparse history itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from torch.func import functional_call

from mmfedrec.generators.profiles import ProfileSpace


@dataclass(frozen=True)
class DenoisingBatch:
    """Training views stacked per client, so the client axis can be vmapped or flattened."""

    noisy: torch.Tensor  # (C, S, P) clean profiles noised to `timesteps`
    timesteps: torch.Tensor  # (C, S)
    conditions: torch.Tensor  # (C, S, P) the masked observed history
    targets: torch.Tensor  # (C, S, P) v-prediction target

    def select(self, clients: slice | torch.Tensor) -> DenoisingBatch:
        """The views of a subset of clients."""
        return DenoisingBatch(
            self.noisy[clients], self.timesteps[clients], self.conditions[clients], self.targets[clients]
        )


def completion_batch(
    histories: torch.Tensor,
    space: ProfileSpace,
    scheduler: DDPMScheduler,
    views_per_client: int,
    keep_range: tuple[float, float],
    generator: torch.Generator,
) -> DenoisingBatch:
    """Draw `views_per_client` masked, noised views of each client's history (C, I).

    Args:
        keep_range: each view keeps every observed item with one probability drawn uniformly
            from this range; the rest vanish from the condition but stay in the target.
    """
    n_clients, n_items = histories.shape
    n_views = n_clients * views_per_client
    full = histories.repeat_interleave(views_per_client, dim=0)  # (C*S, I)
    low, high = keep_range
    keep_probability = low + (high - low) * torch.rand(n_views, 1, generator=generator)  # (C*S, 1)
    observed = full * (torch.rand(n_views, n_items, generator=generator) < keep_probability)  # (C*S, I)
    clean = space.target(full)  # (C*S, P)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (n_views,), generator=generator)
    return DenoisingBatch(
        noisy=scheduler.add_noise(clean, noise, timesteps).reshape(n_clients, views_per_client, -1),
        timesteps=timesteps.reshape(n_clients, views_per_client),
        conditions=space.condition(observed).reshape(n_clients, views_per_client, -1),
        targets=scheduler.get_velocity(clean, noise, timesteps).reshape(n_clients, views_per_client, -1),
    )


def denoising_loss(
    denoiser: torch.nn.Module,
    params: dict[str, torch.Tensor],
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    conditions: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Mean squared v-prediction error of one client's views (S, P) under `params` (a scalar)."""
    prediction = functional_call(denoiser, params, (noisy, timesteps, conditions))  # (S, P)
    return ((prediction - targets) ** 2).mean()


def weighted_loss(denoiser: torch.nn.Module, batch: DenoisingBatch, weights: torch.Tensor) -> torch.Tensor:
    """Example-weighted mean over clients (weights (C,)) of each client's `denoising_loss`, in one pass."""
    n_clients, n_views, dim = batch.noisy.shape
    prediction = denoiser(
        batch.noisy.reshape(-1, dim), batch.timesteps.reshape(-1), batch.conditions.flatten(0, 1)
    ).reshape(n_clients, n_views, dim)
    per_client = ((prediction - batch.targets) ** 2).mean(dim=(1, 2))  # (C,)
    return (per_client * weights).sum() / weights.sum()
