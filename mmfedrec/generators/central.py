"""Central training of the denoiser on pooled profiles: the non-private reference for federated training."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from mmfedrec.generators.denoiser import ProfileDenoiser
from mmfedrec.generators.objective import completion_batch, weighted_loss
from mmfedrec.generators.profiles import ProfileSpace


@dataclass(frozen=True)
class CentralDenoiserConfig:
    steps: int = 300  # optimizer steps
    batch_size: int = 256  # clients per step
    views_per_client: int = 2  # masked, noised copies of a profile per step
    keep_range: tuple[float, float] = (0.05, 0.8)  # fraction of observed items the condition keeps
    lr: float = 1e-3  # Adam step size
    seed: int = 0


def train_central(
    denoiser: ProfileDenoiser,
    scheduler: DDPMScheduler,
    space: ProfileSpace,
    histories: torch.Tensor,
    weights: torch.Tensor,
    config: CentralDenoiserConfig,
) -> list[float]:
    """Train `denoiser` in place with Adam on the same weighted objective as FedAvg; return step losses.

    Args:
        histories: (C, I) multi-hot training profile of each user.
        weights: (C,) weight of each user's loss, as in FedAvg (its number of training interactions).
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
    step_losses = []
    for _ in range(config.steps):
        users = torch.randperm(histories.shape[0], generator=generator)[: config.batch_size]
        batch = completion_batch(
            histories[users], space, scheduler, config.views_per_client, config.keep_range, generator
        )
        loss = weighted_loss(denoiser, batch, weights[users])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_losses.append(float(loss.detach()))
    return step_losses
