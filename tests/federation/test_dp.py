import math

import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.privacy.dp import (
    PrivacyAccountant,
    add_gaussian_noise,
    clip_per_client,
    flatten_updates,
    noise_multiplier_for,
    unflatten,
)


def test_flatten_then_unflatten_is_the_identity() -> None:
    generator = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(3, 2, 4, generator=generator), "b": torch.randn(3, 5, generator=generator)}
    flat = flatten_updates(tensors)
    assert flat.shape == (3, 13)
    torch.testing.assert_close(flat[1, :8], tensors["a"][1].flatten())
    back = unflatten(flat, {name: tuple(t.shape[1:]) for name, t in tensors.items()})
    for name, tensor in tensors.items():
        assert torch.equal(back[name], tensor)
    summed = unflatten(flat.sum(0), {"a": (2, 4), "b": (5,)})  # the server's (P,) sum
    torch.testing.assert_close(summed["b"], tensors["b"].sum(0))


def test_unflatten_rejects_a_size_mismatch() -> None:
    with pytest.raises(ValueError, match="13 values"):
        unflatten(torch.zeros(2, 13), {"a": (3, 4)})


def test_clipping_bounds_every_norm_and_keeps_small_updates() -> None:
    flat = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    clipped, norms = clip_per_client(flat, 1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5, 0.0]))
    torch.testing.assert_close(clipped, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    big = torch.randn(50, 200, generator=torch.Generator().manual_seed(1)) * 10
    assert (torch.linalg.vector_norm(clip_per_client(big, 2.5)[0], dim=1) <= 2.5 + 1e-5).all()
    with pytest.raises(MmfedrecError, match="clipping norm"):
        clip_per_client(flat, 0.0)


def test_noise_has_the_mechanism_std_and_zero_noise_keeps_the_sum() -> None:
    total = torch.arange(5.0)
    assert torch.equal(add_gaussian_noise(total, 0.0, 1.0, torch.Generator().manual_seed(0)), total)
    noisy = add_gaussian_noise(torch.zeros(200_000), 1.5, 2.0, torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(3.0, rel=0.01)
    assert abs(noisy.mean().item()) < 0.03


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    def epsilon(noise: float, rounds: int) -> float:
        accountant = PrivacyAccountant()
        for _ in range(rounds):
            accountant.step(noise, 0.1)
        return accountant.epsilon(1e-5)

    assert PrivacyAccountant().epsilon(1e-5) == 0.0
    assert epsilon(1.0, 10) < epsilon(1.0, 50) < epsilon(1.0, 200)
    assert epsilon(2.0, 50) < epsilon(1.0, 50) < epsilon(0.7, 50)
    assert epsilon(0.0, 1) == math.inf


def test_accountant_state_round_trips_through_json() -> None:
    import json

    accountant = PrivacyAccountant()
    for noise in (1.0, 1.0, 1.2):
        accountant.step(noise, 0.05)
    state = json.loads(json.dumps(accountant.state()))
    restored = PrivacyAccountant.from_state(state)
    assert restored.epsilon(1e-5) == accountant.epsilon(1e-5)
    restored.step(1.2, 0.05)
    accountant.step(1.2, 0.05)
    assert restored.state() == accountant.state()
    with pytest.raises(MmfedrecError, match="accountant"):
        PrivacyAccountant.from_state({"mechanism": "gdp", "history": []})


def test_noise_multiplier_reaches_the_target_epsilon_within_one_percent() -> None:
    for target, rate, rounds in ((1.0, 0.1, 50), (4.0, 0.02, 300)):
        noise = noise_multiplier_for(target, 1e-5, rate, rounds)
        accountant = PrivacyAccountant([(noise, rate, rounds)])
        assert target * 0.99 <= accountant.epsilon(1e-5) <= target * 1.0001


def test_bad_privacy_settings_are_user_errors() -> None:
    with pytest.raises(MmfedrecError, match="sample rate"):
        PrivacyAccountant().step(1.0, 0.0)
    with pytest.raises(MmfedrecError, match="delta"):
        PrivacyAccountant().epsilon(0.0)
    with pytest.raises(MmfedrecError, match="epsilon"):
        noise_multiplier_for(0.0, 1e-5, 0.1, 10)
