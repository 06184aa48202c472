import copy

import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.privacy.dp import clip_updates
from mmfedrec.generators import (
    CentralDenoiserConfig,
    FederatedDenoiserConfig,
    ProfileDenoiser,
    ProfileSpace,
    train_central,
    train_federated,
    training_scheduler,
)
from mmfedrec.generators.federated import (
    fedavg_mean_update,
    federated_round,
    fedsgd_mean_update,
    server_optimizer,
)
from mmfedrec.generators.objective import completion_batch, weighted_loss
from mmfedrec.generators.profiles import training_histories

from .conftest import N_ITEMS, N_USERS, planted_split


def _setup() -> tuple[ProfileDenoiser, torch.Tensor, torch.Tensor, ProfileSpace]:
    torch.manual_seed(0)
    split = planted_split()
    histories = training_histories(split, torch.arange(N_USERS).numpy())
    return ProfileDenoiser(N_ITEMS, hidden_dim=32, time_embed_dim=8), histories, histories.sum(1), ProfileSpace(N_ITEMS)


def _batch(histories: torch.Tensor, space: ProfileSpace, seed: int = 1):
    return completion_batch(histories, space, training_scheduler(), 2, (0.2, 0.6), torch.Generator().manual_seed(seed))


def test_per_client_fedavg_equals_the_gradient_of_the_weighted_loss() -> None:
    denoiser, histories, weights, space = _setup()
    batch = _batch(histories, space)
    config = FederatedDenoiserConfig(local_lr=0.1, chunk_size=7)  # chunks of unequal size
    per_client, loss_a = fedavg_mean_update(denoiser, batch, weights, config)
    one_pass, loss_b = fedsgd_mean_update(denoiser, batch, weights, local_lr=0.1)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for name in one_pass:
        torch.testing.assert_close(per_client[name], one_pass[name], rtol=1e-4, atol=1e-7)


def test_a_sgd_round_is_a_central_gradient_step() -> None:
    denoiser, histories, weights, space = _setup()
    central = copy.deepcopy(denoiser)
    batch = _batch(histories, space)
    config = FederatedDenoiserConfig(server_optimizer="sgd", server_lr=1.0, local_lr=0.05, clip_norm=1e9)
    federated_round(denoiser, batch, weights, config, server_optimizer(denoiser, config), torch.Generator())
    loss = weighted_loss(central, batch, weights)
    loss.backward()
    with torch.no_grad():
        for (name, after), before in zip(denoiser.named_parameters(), central.parameters(), strict=True):
            torch.testing.assert_close(after, before - 0.05 * before.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_clipping_bounds_each_client_update() -> None:
    updates = {"a": torch.tensor([[3.0, 0.0], [0.3, 0.0]]), "b": torch.tensor([[4.0], [0.4]])}
    clipped = clip_updates(updates, 1.0)
    # client 0 has norm 5 -> scaled to 1; client 1 has norm 0.5 -> unchanged
    torch.testing.assert_close(clipped["a"], torch.tensor([[0.6, 0.0], [0.3, 0.0]]))
    torch.testing.assert_close(clipped["b"], torch.tensor([[0.8], [0.4]]))


def test_noise_needs_a_clip_norm() -> None:
    denoiser, histories, weights, space = _setup()
    config = FederatedDenoiserConfig(rounds=1, noise_multiplier=1.0)
    with pytest.raises(MmfedrecError, match="needs clip_norm"):
        train_federated(denoiser, training_scheduler(), space, histories, weights, config)


@pytest.mark.parametrize("dp", [False, True])
def test_federated_training_reduces_the_loss(dp: bool) -> None:
    denoiser, histories, weights, space = _setup()
    held_out = _batch(histories, space, seed=99)
    with torch.no_grad():
        before = float(weighted_loss(denoiser, held_out, weights))
    config = FederatedDenoiserConfig(
        rounds=40, server_lr=1e-2, clients_per_round=20, clip_norm=1.0 if dp else None, noise_multiplier=0.1 * dp
    )
    losses = train_federated(denoiser, training_scheduler(), space, histories, weights, config)
    assert len(losses) == 40
    with torch.no_grad():  # clipping and noise slow DP training down
        assert float(weighted_loss(denoiser, held_out, weights)) < (0.9 if dp else 0.8) * before


def test_central_training_reduces_the_loss() -> None:
    denoiser, histories, weights, space = _setup()
    held_out = _batch(histories, space, seed=99)
    with torch.no_grad():
        before = float(weighted_loss(denoiser, held_out, weights))
    train_central(denoiser, training_scheduler(), space, histories, weights, CentralDenoiserConfig(steps=40, lr=1e-2))
    with torch.no_grad():
        assert float(weighted_loss(denoiser, held_out, weights)) < 0.8 * before
