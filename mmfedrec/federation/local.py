"""Local training of a group of clients, written once for both engines.

The batched engine calls `local_train` on padded chunks of many clients; the reference loop
calls it on one client at a time (C = 1). Each client gets its own copy of the shared tensors
and of the item vectors it touches. Padding sits at the end of each client's examples and a
step in which a client has no example is undone for it, so both engines compute the same thing
(optimizer state is elementwise, hence per client, and starts fresh each round).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfedrec.federation.batches import PaddedChunk


@dataclass(frozen=True)
class LocalConfig:
    lr: float = 0.3  # client Adam step on private state and item vectors: one round is few steps, so large
    shared_lr: float = 0.05  # step on the shared dense tensors (experts, MLPs), averaged over many clients
    optimizer: str = "adam"  # "adam" (fresh state each round) or "sgd"
    local_epochs: int = 1  # passes over the client's examples per round
    batch_size: int = 64  # examples (positive + its negatives) per local step
    loss: str = "bce"  # "bce" (sampled negatives) or "bpr"
    proximal_mu: float = 0.0  # FedProx (Li et al., 2020): mu/2 ||shared_local - shared_global||^2
    weight_decay: float = 0.0  # L2 on the private user state


@dataclass
class LocalResult:
    """What a chunk of clients produced. Only `shared_delta`, `row_delta` (+ items), `routed_mass`
    and `n_examples` are uploaded; `private` stays on the clients."""

    private: dict[str, Tensor]  # (C, ...) new private state
    shared_delta: dict[str, Tensor]  # (C, ...) local shared - global shared
    row_items: Tensor  # (C, L, 1 + n_neg) item index of each touched item vector
    row_mask: Tensor  # (C, L, 1 + n_neg) which of them are real
    row_delta: Tensor  # (C, L, 1 + n_neg, D + 1) change of each touched item vector
    routed_mass: Tensor | None  # (C, K) examples routed to each expert
    n_examples: Tensor  # (C,) number of real examples

    def touched_pairs(self, n_items: int) -> Tensor:
        """Sorted keys `row * n_items + item` of the distinct (client, item) pairs of the chunk,
        `row` being the client's row in the chunk: one uploaded item vector each."""
        rows = torch.arange(len(self.n_examples)).view(-1, 1, 1).expand_as(self.row_items)
        return torch.unique(rows[self.row_mask] * n_items + self.row_items[self.row_mask])


def example_loss(scores: Tensor, mask: Tensor, kind: str) -> Tensor:
    """(C, B) loss per example from scores (C, B, 1 + n_neg) whose first column is the positive."""
    if kind == "bce":
        labels = torch.zeros_like(scores)
        labels[..., 0] = 1.0
        per_item = F.binary_cross_entropy_with_logits(scores, labels, reduction="none") * mask
        return per_item.sum(-1)
    if kind == "bpr":
        margin = scores[..., :1] - scores[..., 1:]  # (C, B, n_neg)
        negatives = mask[..., 1:]
        return -(F.logsigmoid(margin) * negatives).sum(-1) / negatives.sum(-1).clamp_min(1)
    raise ValueError(f"loss must be 'bce' or 'bpr', got {kind!r}")


def _optimizer(config: LocalConfig, shared: list[Tensor], own: list[Tensor]) -> torch.optim.Optimizer:
    """Large steps on what is the client's own (user state, item vectors it touched), smaller ones
    on shared dense tensors: every client moves those, and large local steps there do not average
    into a useful update (measured on ML-100K: lr 0.5 on experts cost ~15% NDCG@10)."""
    groups = [{"params": shared, "lr": config.shared_lr}, {"params": own, "lr": config.lr}]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {config.optimizer!r}")


@torch.no_grad()
def _keep_inactive(params: list[Tensor], before: list[Tensor], active: Tensor) -> None:
    """Undo a step for clients with no example in it: Adam's momentum would move them anyway,
    while the one-client loop never takes that step."""
    for param, old in zip(params, before, strict=True):
        param.copy_(torch.where(active.view(-1, *[1] * (param.dim() - 1)), param, old))


def local_train(
    model: object,
    shared: dict[str, Tensor],
    private: dict[str, Tensor],
    item_rows: Tensor,
    chunk: PaddedChunk,
    config: LocalConfig,
) -> LocalResult:
    """Train each client of `chunk` on its examples, starting from the global `shared` tensors.

    Args:
        model: a client model (see `mmfedrec.federation.models`).
        shared: global shared tensors, no client dim.
        private: this chunk's private state, (C, ...).
        item_rows: starting item vectors for the chunk's items, (C, L, 1 + n_neg, D + 1).
    """
    n_clients, length = chunk.weights.shape
    local_shared = {k: v.unsqueeze(0).repeat(n_clients, *[1] * v.dim()).requires_grad_() for k, v in shared.items()}
    local_private = {k: v.clone().requires_grad_() for k, v in private.items()}
    # One leaf per step slice: a step's backward then only touches the item vectors it used.
    steps = [slice(start, start + config.batch_size) for start in range(0, length, config.batch_size)]
    step_rows = [item_rows[:, step].clone().requires_grad_() for step in steps]
    client_params = [*local_shared.values(), *local_private.values()]
    optimizer = _optimizer(config, list(local_shared.values()), [*local_private.values(), *step_rows])
    item_mask = chunk.item_mask.float()
    real = chunk.weights > 0  # (C, L)
    for _ in range(config.local_epochs):
        for step, batch_rows in zip(steps, step_rows, strict=True):  # batch_rows: (C, B, 1 + n_neg, D + 1)
            flat = batch_rows.reshape(n_clients, -1, batch_rows.shape[-1])  # (C, B * (1 + n_neg), D + 1)
            scores = model.scores(local_private, local_shared, flat).view(batch_rows.shape[:-1])  # (C, B, 1 + n_neg)
            per_example = example_loss(scores, item_mask[:, step], config.loss) * chunk.weights[:, step]
            n_real = real[:, step].sum(-1)  # (C,)
            active = n_real > 0  # (C,) clients with an example in this step
            is_active = active.float()
            loss = per_example.sum(-1) / n_real.clamp_min(1)
            loss = loss + is_active * model.auxiliary_loss(local_private, local_shared)
            if config.weight_decay:
                loss = loss + is_active * config.weight_decay * (local_private["user"] ** 2).sum(-1)
            if config.proximal_mu:
                for name, tensor in local_shared.items():
                    drift = (tensor - shared[name]).pow(2).flatten(1).sum(-1)
                    loss = loss + is_active * 0.5 * config.proximal_mu * drift
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            if bool(active.all()):
                optimizer.step()
            else:  # some clients have run out of examples: keep them where they are
                before = [p.detach().clone() for p in client_params]
                optimizer.step()
                _keep_inactive(client_params, before, active)
    with torch.no_grad():
        final_private = {k: v.detach() for k, v in local_private.items()}
        final_shared = {k: v.detach() for k, v in local_shared.items()}
        n_examples = real.sum(-1).float()
        gate = model.routed_mass(final_private, final_shared)
        return LocalResult(
            private=final_private,
            shared_delta={k: final_shared[k] - shared[k] for k in shared},
            row_items=chunk.items,
            row_mask=chunk.item_mask,
            row_delta=torch.cat([r.detach() for r in step_rows], dim=1) - item_rows,
            routed_mass=None if gate is None else gate * n_examples.unsqueeze(-1),
            n_examples=n_examples,
        )
