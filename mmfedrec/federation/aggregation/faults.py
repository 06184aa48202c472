"""Faulty and malicious clients for robustness experiments, and the server's checks against them.

Attacks follow the usual threat models of Byzantine-robust FL (Blanchard et al., 2017; Fang et
al., 2020): a seeded fixed set of clients sends scaled ("model replacement"), random or
sign-flipped updates. The server rejects what it can check without seeing the data: missing or
misshapen fields and non-finite values. Dropped clients are selected but never reply.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mmfedrec.errors import MmfedrecError

CORRUPTIONS = ("scale", "random", "sign-flip")
_BYZANTINE_SALT, _DROPPED_SALT = 0xB12A, 0xD209  # one seed gives unrelated attackers and dropouts


def byzantine_clients(n_clients: int, fraction: float, seed: int) -> np.ndarray:
    """(n_clients,) bool: exactly round(fraction * n_clients) attackers, fixed for the whole run."""
    return _seeded_subset(n_clients, fraction, seed, _BYZANTINE_SALT)


def dropped_clients(n: int, fraction: float, seed: int) -> np.ndarray:
    """(n,) bool over a round's selected clients: round(fraction * n) of them never reply.

    Pass a per-round seed (e.g. `batches.round_key(seed, round)`) so different clients drop each round.
    """
    return _seeded_subset(n, fraction, seed, _DROPPED_SALT)


def corrupt(flat: Tensor, mask: Tensor, mode: str, generator: torch.Generator, scale: float = -20.0) -> Tensor:
    """`flat` (C, P) with the rows in `mask` (C,) replaced by an attack.

    Modes: "scale" multiplies the honest update by `scale` (boosted, by default reversed);
    "random" sends N(0, scale^2) noise; "sign-flip" sends the negated update.
    """
    if mode not in CORRUPTIONS:
        raise MmfedrecError(f"corruption must be one of {CORRUPTIONS}, got {mode!r}")
    if mode == "scale":
        attack = flat * scale
    elif mode == "random":
        attack = torch.randn(flat.shape, generator=generator, dtype=flat.dtype) * abs(scale)
    else:
        attack = -flat
    return torch.where(mask.view(-1, 1), attack, flat)


def finite_clients(flat: Tensor) -> Tensor:
    """(C,) bool: clients whose update (C, P) has no NaN or infinite value."""
    return torch.isfinite(flat).all(dim=1)


def validate_message(message: Mapping[str, object], expected: Mapping[str, tuple[int, ...]]) -> list[str]:
    """One human-readable problem per bad field of a client upload; empty when it is acceptable.

    Checks that every expected field is present, is a tensor of the expected shape and is finite,
    and that nothing else is sent (an extra field could carry private state).
    """
    problems = []
    for name, shape in expected.items():
        if name not in message:
            problems.append(f"{name}: missing")
            continue
        value = message[name]
        if not isinstance(value, Tensor):
            problems.append(f"{name}: expected a tensor, got {type(value).__name__}")
        elif tuple(value.shape) != tuple(shape):
            problems.append(f"{name}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
        elif not bool(torch.isfinite(value).all()):
            problems.append(f"{name}: {int((~torch.isfinite(value)).sum())} NaN or infinite values")
    problems.extend(f"{name}: unexpected field" for name in message if name not in expected)
    return problems


def _seeded_subset(n: int, fraction: float, seed: int, salt: int) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise MmfedrecError(f"the fraction of clients must be in [0, 1], got {fraction}")
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng([salt, seed]).choice(n, size=round(fraction * n), replace=False)] = True
    return chosen
