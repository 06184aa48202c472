"""mmfedrec's federated mixture-of-experts recommender (DESIGN.md, "The federated model").

K shared experts each map the client's private user state to a preference vector; a router
(gate) mixes them per client. The personalised router is private as a whole: every client
starts from the same global initialisation (drawn from the run seed) and fine-tunes its own copy,
which is never uploaded. A shared router part trained beside a private residual would leak it:
both receive the same gradient, so the shared part's update equals the residual's (measured:
the first round's upload contained the private gate exactly), hence no such split. The
"shared-gate" ablation trains one router that is aggregated like the experts. Items come as
vectors from the server-side item tower (multimodal content + ID), last column = bias.

With `history = H > 0` the experts read the user vector plus a context: the recency-weighted
mean vector of the client's H latest items before the one scored (`mmfedrec.federation.local.history`),
through a shared (D, D) map that starts as the identity and is aggregated like the experts, so
what the user did just now can weigh differently from who the user is. The gate still reads the
user vector alone, so routing stays a property of the client.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfedrec.federation.models.scoring import row_dot


class MixtureOfExperts:
    name = "moe"

    def __init__(
        self, dim: int, n_experts: int, personalized_gate: bool = True, balance_weight: float = 0.01, history: int = 0
    ) -> None:
        self.dim = dim
        self.n_experts = n_experts
        self.history = history
        self.personalized_gate = personalized_gate
        self.balance_weight = balance_weight  # pulls each client's gate towards uniform: K * sum_k g_k^2 >= 1

    def init_shared(self, generator: torch.Generator) -> dict[str, Tensor]:
        eye = torch.eye(self.dim).expand(self.n_experts, self.dim, self.dim)
        shared = {
            "experts.weight": eye + 0.05 * torch.randn(self.n_experts, self.dim, self.dim, generator=generator),
            "experts.bias": torch.zeros(self.n_experts, self.dim),
        }
        if self.history:
            shared["context.weight"] = torch.eye(self.dim)
        router_init = self._router_init(generator)  # drawn either way: both variants share user inits
        if not self.personalized_gate:
            shared |= {f"router.shared.{k}": v for k, v in router_init.items()}
        return shared

    def init_private(self, n_clients: int, generator: torch.Generator) -> dict[str, Tensor]:
        private = {"user": 0.1 * torch.randn(n_clients, self.dim, generator=generator)}
        if self.personalized_gate:  # every client starts from the same global router
            router_init = self._router_init(torch.Generator().manual_seed(int(generator.initial_seed())))
            for name, value in router_init.items():
                private[f"router.private.{name}"] = value.unsqueeze(0).repeat(n_clients, *[1] * value.dim())
        return private

    def _router_init(self, generator: torch.Generator) -> dict[str, Tensor]:
        return {
            "weight": 0.1 * torch.randn(self.n_experts, self.dim, generator=generator),
            "bias": torch.zeros(self.n_experts),
        }

    def gate(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        """(C, K) expert weights of each client."""
        router = "router.private" if self.personalized_gate else "router.shared"
        params = private if self.personalized_gate else shared
        user = private["user"].unsqueeze(1)  # (C, 1, D)
        gate_logits = (user * params[f"{router}.weight"]).sum(-1) + params[f"{router}.bias"]  # (C, K)
        return torch.softmax(gate_logits, dim=-1)

    def client_vector(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], context: Tensor | None = None
    ) -> Tensor:
        """(C, D+1) mixed preference vector, with a trailing 1 that meets the item bias; with a
        history `context` (C, D) or (C, B, D), one vector per context: (C, D+1) or (C, B, D+1)."""
        user = private["user"]
        if context is None:
            expert_out = torch.matmul(user[:, None, None, :], shared["experts.weight"]).squeeze(-2)  # (C, K, D)
            expert_out = expert_out + shared["experts.bias"]
            mixed = (self.gate(private, shared).unsqueeze(-1) * expert_out).sum(1)  # (C, D)
            return torch.nn.functional.pad(mixed, (0, 1), value=1.0)
        # Linear experts: (user + context A) W + b = (user W + b) + context (A W), with W, b the
        # client's mixed experts and A the context map: one (D, D) map per client, one product per context.
        gate = self.gate(private, shared).unsqueeze(1)  # (C, 1, K); products beat broadcast sums
        weight = torch.matmul(gate, shared["experts.weight"].flatten(-2)).view(len(gate), self.dim, self.dim)
        bias = torch.matmul(gate, shared["experts.bias"]).squeeze(1)  # (C, D)
        user_part = torch.baddbmm(bias.unsqueeze(1), user.unsqueeze(1), weight)  # (C, 1, D)
        context_map = torch.matmul(shared["context.weight"], weight)  # (C, D, D)
        per_example = context.dim() == 3
        mixed = torch.baddbmm(user_part, context if per_example else context.unsqueeze(1), context_map)  # (C, B, D)
        return torch.nn.functional.pad(mixed if per_example else mixed.squeeze(1), (0, 1), value=1.0)

    def scores(
        self, private: dict[str, Tensor], shared: dict[str, Tensor], rows: Tensor, context: Tensor | None = None
    ) -> Tensor:
        """(C, L) scores of item `rows` (C|1, L, D+1), with a (C, D) history `context` when given."""
        return row_dot(rows, self.client_vector(private, shared, context))

    def auxiliary_loss(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor:
        gate = self.gate(private, shared)
        return self.balance_weight * self.n_experts * (gate**2).sum(-1)  # (C,)

    def routed_mass(self, private: dict[str, Tensor], shared: dict[str, Tensor]) -> Tensor | None:
        return self.gate(private, shared)
