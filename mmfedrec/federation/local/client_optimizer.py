"""The optimizer of a chunk's client tensors, stepping only the clients of each local step.

`pad_chunks` orders a chunk's clients largest first, so the clients with examples in a local
step are a prefix [:n], and each of them has taken every step before it: one step count serves
them all. Stepping that prefix alone (torch's functional Adam / SGD on views) is what each client
alone would do, without touching the others' parameters, gradients or moments (a full-width
step, with its zeroed gradients and restored tails, took a visible share of a round).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.adam import adam
from torch.optim.sgd import sgd

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8


class PrefixOptimizer:
    """Adam (state fresh each round) or SGD over groups of (C, ...) client tensors, in place."""

    def __init__(self, kind: str, groups: list[tuple[list[Tensor], float]]) -> None:
        """Args:
        kind: "adam" or "sgd".
        groups: (tensors, learning rate) pairs; every tensor has the chunk's clients first.
        """
        if kind not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {kind!r}")
        self.kind = kind
        self.groups = groups
        if kind == "adam":
            self.moments = [[(torch.zeros_like(t), torch.zeros_like(t)) for t in tensors] for tensors, _ in groups]
            self.step_counts = [[torch.zeros(()) for _ in tensors] for tensors, _ in groups]

    @torch.no_grad()
    def step(self, n: int, grads: list[list[Tensor]]) -> None:
        """Step clients [:n] of every tensor with `grads` ((n, ...) per tensor, groups in order)."""
        for index, ((tensors, lr), group_grads) in enumerate(zip(self.groups, grads, strict=True)):
            params = [t[:n] for t in tensors]
            if self.kind == "sgd":
                sgd(params, group_grads, [None] * len(params), weight_decay=0.0, momentum=0.0, lr=lr,
                    dampening=0.0, nesterov=False, maximize=False)  # fmt: skip
                continue
            moments = self.moments[index]
            adam(
                params,
                group_grads,
                [m[:n] for m, _ in moments],
                [v[:n] for _, v in moments],
                [],
                self.step_counts[index],
                fused=True,
                amsgrad=False,
                beta1=ADAM_BETAS[0],
                beta2=ADAM_BETAS[1],
                lr=lr,
                weight_decay=0.0,
                eps=ADAM_EPS,
                maximize=False,
            )
