"""The narrow factory from a model name to a client model."""

from __future__ import annotations

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.models.mf import MatrixFactorization
from mmfedrec.federation.models.moe import MixtureOfExperts
from mmfedrec.federation.models.ncf import NeuralCF
from mmfedrec.federation.models.pfedrec import PersonalizedScoreFunction

MODEL_NAMES = ("moe", "mf", "ncf", "pfedrec")


def build_model(
    name: str, dim: int, n_experts: int = 4, personalized_gate: bool = True
) -> MixtureOfExperts | MatrixFactorization | NeuralCF | PersonalizedScoreFunction:
    if name == "moe":
        return MixtureOfExperts(dim, n_experts, personalized_gate)
    if name == "mf":
        return MatrixFactorization(dim)
    if name == "ncf":
        return NeuralCF(dim)
    if name == "pfedrec":
        return PersonalizedScoreFunction(dim)
    raise MmfedrecError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
