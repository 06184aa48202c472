"""mmfedrec's federated mixture-of-experts recommender (DESIGN.md, "The federated model").

K shared experts each map the client's private user state to a preference vector; a router
(gate) mixes them per client. The router's logits are a shared global part, aggregated like
the experts, plus a private residual that each client fine-tunes and never uploads, so every
client starts from the global routing and personalises it. Items come as vectors from the
server-side item tower (multimodal content + ID), last column = bias.
"""

from __future__ import annotations

import torch
from torch import Tensor


class MixtureOfExperts:
    name = "moe"

    def __init__(self, dim: int, n_experts: int, personalized_gate: bool = True, balance_weight: float = 0.01) -> None:
        self.dim = dim
        self.n_experts = n_experts
        self.personalized_gate = personalized_gate
        self.balance_weight = balance_weight  # pulls each client's gate towards uniform: K * sum_k g_k^2 >= 1

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        eye = torch.eye(self.dim).expand(self.n_experts, self.dim, self.dim)
        return {
            "experts.weight": eye + 0.05 * torch.randn(self.n_experts, self.dim, self.dim, generator=generator),
            "experts.bias": torch.zeros(self.n_experts, self.dim),
            "router.shared.weight": 0.1 * torch.randn(self.n_experts, self.dim, generator=generator),
            "router.shared.bias": torch.zeros(self.n_experts),
        }

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        private = {"user": 0.1 * torch.randn(n_clients, self.dim, generator=generator)}
        if self.personalized_gate:
            private["router.private.weight"] = torch.zeros(n_clients, self.n_experts, self.dim)
            private["router.private.bias"] = torch.zeros(n_clients, self.n_experts)
        return private

    def gate(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        """(C, K) expert weights of each client."""
        user = private["user"].unsqueeze(1)  # (C, 1, D)
        gate_logits = (user * shared["router.shared.weight"]).sum(-1) + shared["router.shared.bias"]  # (C, K)
        if self.personalized_gate:
            gate_logits = gate_logits + (user * private["router.private.weight"]).sum(-1)
            gate_logits = gate_logits + private["router.private.bias"]
        return torch.softmax(gate_logits, dim=-1)

    def preference(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        """(C, D+1) mixed preference vector, with a trailing 1 that meets the item bias."""
        user = private["user"]
        expert_out = torch.matmul(user[:, None, None, :], shared["experts.weight"]).squeeze(-2)  # (C, K, D)
        expert_out = expert_out + shared["experts.bias"]
        mixed = (self.gate(private, shared).unsqueeze(-1) * expert_out).sum(1)  # (C, D)
        return torch.nn.functional.pad(mixed, (0, 1), value=1.0)

    def scores(self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor) -> Tensor:
        return torch.matmul(rows, self.preference(private, shared).unsqueeze(-1)).squeeze(-1)  # (C, L)

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        gate = self.gate(private, shared)
        return self.balance_weight * self.n_experts * (gate**2).sum(-1)  # (C,)

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return self.gate(private, shared)
