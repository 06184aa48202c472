"""Federated training of the denoiser: FedAvg (McMahan et al., 2017) of per-client local updates.

Each client noises only its own training profile and uploads a model update, never the profile.
Clients are batched: their views are stacked and per-client updates come from one
`vmap(grad)` call per chunk of clients. Without clipping and with one local step (FedSGD), the
example-weighted mean of the client updates -lr * g_c equals -lr times the gradient of the
example-weighted mean loss, so that case runs as one backward pass without materializing
per-client updates (a test checks both paths agree). The
averaged update is applied by a server optimizer: plain SGD (FedAvg) or Adam (FedAdam, Reddi et
al., 2021). Per-client clipping and Gaussian noise make it DP-ready (DP-FedAvg, McMahan et al.,
2018); accounting is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from diffusers import DDPMScheduler
from torch.func import grad_and_value, vmap

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation import fedavg
from mmfedrec.federation.privacy.dp import clip_updates
from mmfedrec.generators.denoiser import ProfileDenoiser
from mmfedrec.generators.objective import DenoisingBatch, completion_batch, denoising_loss, weighted_loss
from mmfedrec.generators.profiles import ProfileSpace

SERVER_OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class FederatedDenoiserConfig:
    rounds: int = 300  # server rounds
    clients_per_round: int | None = None  # clients sampled per round; None = every client
    views_per_client: int = 2  # masked, noised copies of a client's profile per round
    keep_range: tuple[float, float] = (0.05, 0.8)  # fraction of observed items the condition keeps
    local_steps: int = 1  # local SGD steps before upload (1 = FedSGD)
    local_lr: float = 0.1  # local SGD step size; the update is -local_lr * gradient for one step
    server_optimizer: str = "adam"  # "sgd": x += server_lr * mean update; "adam": FedAdam on -mean update
    server_lr: float = 1e-3
    clip_norm: float | None = None  # DP: clip each client's whole update to this L2 norm
    noise_multiplier: float = 0.0  # DP: noise std = multiplier * clip_norm * max weight / total weight
    chunk_size: int = 32  # clients per vmap call: bounds the memory of stacked per-client updates
    seed: int = 0


def server_optimizer(denoiser: ProfileDenoiser, config: FederatedDenoiserConfig) -> torch.optim.Optimizer:
    """The optimizer that applies the averaged client update (as a negative pseudo-gradient)."""
    if config.server_optimizer == "sgd":
        return torch.optim.SGD(denoiser.parameters(), lr=config.server_lr)
    if config.server_optimizer == "adam":
        return torch.optim.Adam(denoiser.parameters(), lr=config.server_lr)
    raise MmfedrecError(f"server_optimizer must be one of {SERVER_OPTIMIZERS}, got {config.server_optimizer!r}")


def client_updates(
    denoiser: ProfileDenoiser, batch: DenoisingBatch, local_steps: int, local_lr: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-client updates {name: (C, ...)} after local SGD, and each client's loss before it (C,)."""
    params = {name: param.detach() for name, param in denoiser.named_parameters()}
    loss_and_grad = grad_and_value(partial(denoising_loss, denoiser))

    def local_update(
        noisy: torch.Tensor, timesteps: torch.Tensor, conditions: torch.Tensor, targets: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        local = params
        for step in range(local_steps):
            grads, loss = loss_and_grad(local, noisy, timesteps, conditions, targets)
            if step == 0:
                first_loss = loss
            local = {name: local[name] - local_lr * grads[name] for name in local}
        return {name: local[name] - params[name] for name in params}, first_loss

    return vmap(local_update)(batch.noisy, batch.timesteps, batch.conditions, batch.targets)


def federated_round(
    denoiser: ProfileDenoiser,
    batch: DenoisingBatch,
    weights: torch.Tensor,
    config: FederatedDenoiserConfig,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> float:
    """Run one round on the clients of `batch` (weights (C,), their example counts); return their mean loss."""
    if config.clip_norm is None and config.local_steps == 1:
        mean_update, loss = fedsgd_mean_update(denoiser, batch, weights, config.local_lr)
    else:
        mean_update, loss = fedavg_mean_update(denoiser, batch, weights, config)
    if config.noise_multiplier > 0:
        if config.clip_norm is None:
            raise MmfedrecError("noise_multiplier needs clip_norm: the noise is calibrated to the clip")
        std = config.noise_multiplier * config.clip_norm * float(weights.max() / weights.sum())
        mean_update = {
            name: update + std * torch.randn(update.shape, generator=generator) for name, update in mean_update.items()
        }
    optimizer.zero_grad()
    for name, param in denoiser.named_parameters():
        param.grad = -mean_update[name]
    optimizer.step()
    return loss


def fedsgd_mean_update(
    denoiser: ProfileDenoiser, batch: DenoisingBatch, weights: torch.Tensor, local_lr: float
) -> tuple[dict[str, torch.Tensor], float]:
    """The FedAvg of one-step, unclipped client updates, as -local_lr * grad of the weighted loss."""
    names, params = zip(*denoiser.named_parameters(), strict=True)
    loss = weighted_loss(denoiser, batch, weights)
    grads = torch.autograd.grad(loss, params)
    return {name: -local_lr * grad for name, grad in zip(names, grads, strict=True)}, float(loss.detach())


def fedavg_mean_update(
    denoiser: ProfileDenoiser, batch: DenoisingBatch, weights: torch.Tensor, config: FederatedDenoiserConfig
) -> tuple[dict[str, torch.Tensor], float]:
    """FedAvg of materialized (optionally clipped) per-client updates, chunk by chunk.

    Chunks are averaged with FedAvg and the chunk means again with FedAvg, weighted by chunk
    totals, which equals FedAvg over all clients.
    """
    chunk_means, chunk_weights, loss_sum = [], [], 0.0
    for start in range(0, len(weights), config.chunk_size):
        chunk = slice(start, start + config.chunk_size)
        updates, losses = client_updates(denoiser, batch.select(chunk), config.local_steps, config.local_lr)
        if config.clip_norm is not None:
            updates = clip_updates(updates, config.clip_norm)
        chunk_weight = weights[chunk]
        per_client = [{name: update[c] for name, update in updates.items()} for c in range(len(chunk_weight))]
        chunk_means.append(fedavg(per_client, chunk_weight.tolist()))
        chunk_weights.append(float(chunk_weight.sum()))
        loss_sum += float((losses * chunk_weight).sum())
    return fedavg(chunk_means, chunk_weights), loss_sum / float(weights.sum())


def train_federated(
    denoiser: ProfileDenoiser,
    scheduler: DDPMScheduler,
    space: ProfileSpace,
    histories: torch.Tensor,
    weights: torch.Tensor,
    config: FederatedDenoiserConfig,
) -> list[float]:
    """Train `denoiser` in place over `config.rounds` rounds; return the mean loss of each round.

    Args:
        histories: (C, I) multi-hot training profile of each client (training items only).
        weights: (C,) FedAvg weight of each client, usually its number of training interactions.
    """
    if histories.shape[0] != weights.shape[0]:
        raise MmfedrecError(f"{histories.shape[0]} client histories but {weights.shape[0]} weights")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = server_optimizer(denoiser, config)
    n_clients = histories.shape[0]
    per_round = n_clients if config.clients_per_round is None else min(config.clients_per_round, n_clients)
    round_losses = []
    for _ in range(config.rounds):
        clients = torch.randperm(n_clients, generator=generator)[:per_round]
        batch = completion_batch(
            histories[clients], space, scheduler, config.views_per_client, config.keep_range, generator
        )
        round_losses.append(federated_round(denoiser, batch, weights[clients], config, optimizer, generator))
    return round_losses
