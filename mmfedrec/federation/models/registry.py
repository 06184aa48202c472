"""The narrow factory from a model name to a client model."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.models.mf import MatrixFactorization
from mmfedrec.federation.models.moe import MixtureOfExperts
from mmfedrec.federation.models.ncf import NeuralCF
from mmfedrec.federation.models.pfedrec import PersonalizedScoreFunction
from mmfedrec.federation.models.protocol import ClientModel

MODEL_NAMES = ("moe", "mf", "ncf", "pfedrec")


def build_model(
    name: str, dim: int, n_experts: int = 4, personalized_gate: bool = True, history: int = 0
) -> MixtureOfExperts | MatrixFactorization | NeuralCF | PersonalizedScoreFunction:
    if history and name != "moe":
        raise MmfedrecError(f"a history-aware user state is part of the mixture-of-experts model, not {name}")
    if name == "moe":
        return MixtureOfExperts(dim, n_experts, personalized_gate, history=history)
    if name == "mf":
        return MatrixFactorization(dim)
    if name == "ncf":
        return NeuralCF(dim)
    if name == "pfedrec":
        return PersonalizedScoreFunction(dim)
    raise MmfedrecError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def initial_state(model: ClientModel, n_users: int, seed: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(shared, private (n_users, ...)) initial tensors of a run: one generator, shared first.

    Every engine (batched, loop, central, each Flower silo) draws them here, so they all start
    from the same model for a seed."""
    generator = torch.Generator().manual_seed(seed)
    shared = model.init_shared(generator)
    return shared, model.init_private(n_users, generator)
