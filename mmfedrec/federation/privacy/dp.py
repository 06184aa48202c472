"""Client-level differential privacy: DP-FedAvg (McMahan et al., 2018, "Learning Differentially
Private Recurrent Language Models").

Each client's whole update (all its uploaded tensors, flattened) is clipped to L2 norm `max_norm`,
so one client moves the sum by at most `max_norm`; the server adds N(0, (z * max_norm)^2) noise to
the sum and divides by a fixed denominator. Privacy spent over rounds of Poisson-sampled clients
(rate q) is tracked with the Renyi-DP accountant of opacus (Mironov, 2017), imported lazily.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch
from torch import Tensor

from mmfedrec.errors import MmfedrecError


def flatten_updates(tensors: Mapping[str, Tensor]) -> Tensor:
    """(C, P) one row per client: every (C, ...) tensor flattened, concatenated in `tensors`' order.

    Clipping must see a client's whole upload at once: clipping tensors separately would bound
    the client's influence only by the sum of the per-tensor bounds.
    """
    return torch.cat([tensor.flatten(1) for tensor in tensors.values()], dim=1)


def unflatten(flat: Tensor, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """The inverse of `flatten_updates`: (..., P) -> name -> (..., *shape), in `shapes`' order.

    `shapes` are per-client shapes (no client dim), e.g. `{k: v.shape[1:] for k, v in tensors.items()}`;
    a summed (P,) vector unflattens to the shared tensors' shapes.
    """
    sizes = [math.prod(shape) for shape in shapes.values()]
    if sum(sizes) != flat.shape[-1]:
        raise ValueError(f"flat has {flat.shape[-1]} values per row, shapes need {sum(sizes)}")
    parts = torch.split(flat, sizes, dim=-1)
    return {
        name: part.reshape(*flat.shape[:-1], *shape) for (name, shape), part in zip(shapes.items(), parts, strict=True)
    }


def clip_factors(norms: Tensor, max_norm: float) -> Tensor:
    """(C,) scales that bring each client's update norm `norms` (C,) to at most `max_norm`: the one
    per-client clipping rule of DP, norm bounding and the denoiser's federated training."""
    if not max_norm > 0:
        raise MmfedrecError(f"the clipping norm must be > 0, got {max_norm}")
    return (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)


def clip_per_client(flat: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
    """(clipped (C, P), norms before clipping (C,)): each row scaled to L2 norm at most `max_norm`."""
    norms = torch.linalg.vector_norm(flat, dim=1)  # (C,)
    return flat * clip_factors(norms, max_norm).unsqueeze(1), norms


def clip_updates(updates: Mapping[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """Each client's update (all tensors together, (C, ...) each) scaled to L2 norm at most `max_norm`."""
    clipped, _ = clip_per_client(flatten_updates(updates), max_norm)
    return unflatten(clipped, {name: tuple(tensor.shape[1:]) for name, tensor in updates.items()})


def add_gaussian_noise(total: Tensor, noise_multiplier: float, max_norm: float, generator: torch.Generator) -> Tensor:
    """`total` (P,) + N(0, (noise_multiplier * max_norm)^2) per coordinate: the Gaussian mechanism
    on a sum whose sensitivity to one client is `max_norm` (its updates are clipped to it)."""
    if noise_multiplier < 0:
        raise MmfedrecError(f"the noise multiplier must be >= 0, got {noise_multiplier}")
    if noise_multiplier == 0:
        return total.clone()
    noise = torch.randn(total.shape, generator=generator, dtype=total.dtype)
    return total + noise * (noise_multiplier * max_norm)


class PrivacyAccountant:
    """(epsilon, delta) spent so far by rounds of the subsampled Gaussian mechanism (RDP).

    The state is opacus' `history`: [noise_multiplier, sample_rate, rounds] per run of identical
    rounds, plain JSON, so a checkpoint restores the budget already spent.
    """

    def __init__(self, history: list[tuple[float, float, int]] | None = None) -> None:
        from opacus.accountants import RDPAccountant

        self._accountant = RDPAccountant()
        self._accountant.history = [(float(z), float(q), int(n)) for z, q, n in history or []]

    def step(self, noise_multiplier: float, sample_rate: float) -> None:
        """Account one round in which each client took part with probability `sample_rate`."""
        if not 0.0 < sample_rate <= 1.0:
            raise MmfedrecError(f"the client sample rate must be in (0, 1], got {sample_rate}")
        if noise_multiplier < 0:
            raise MmfedrecError(f"the noise multiplier must be >= 0, got {noise_multiplier}")
        self._accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at `delta` (0 before any round, inf without noise)."""
        if not 0.0 < delta < 1.0:
            raise MmfedrecError(f"delta must be in (0, 1), got {delta}")
        if any(z == 0 for z, _, _ in self._accountant.history):
            return math.inf
        return float(self._accountant.get_epsilon(delta=delta))

    def state(self) -> dict[str, object]:
        """JSON-serialisable state for checkpoints."""
        return {"mechanism": "rdp", "history": [[z, q, n] for z, q, n in self._accountant.history]}

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> PrivacyAccountant:
        if state.get("mechanism") != "rdp":
            raise MmfedrecError(f"unknown privacy accountant state {state.get('mechanism')!r}; expected 'rdp'")
        return cls([tuple(entry) for entry in state["history"]])


def noise_multiplier_for(target_epsilon: float, delta: float, sample_rate: float, rounds: int) -> float:
    """The smallest noise multiplier (to 0.5% of `target_epsilon`) whose `rounds` stay within budget."""
    from opacus.accountants.utils import get_noise_multiplier

    if not target_epsilon > 0:
        raise MmfedrecError(f"the target epsilon must be > 0, got {target_epsilon}")
    if rounds < 1:
        raise MmfedrecError(f"rounds must be >= 1, got {rounds}")
    with warnings.catch_warnings():  # the bisection tries tiny multipliers whose best RDP order is the largest
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        noise = get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=rounds,
            accountant="rdp",
            epsilon_tolerance=0.005 * target_epsilon,
        )
    return float(noise)
