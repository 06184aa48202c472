"""Fuse text and image item features into one item representation, with masked missing modalities.

Gated fusion follows the modality-gating of Arevalo et al. 2017 ("Gated Multimodal Units"),
restricted to the modalities an item actually has; concat fusion is the early-fusion baseline.
A masked input never reaches the output: it is replaced before any arithmetic (so NaN or
garbage in a masked row cannot leak), and its weight or slot is taken over by something learned.
"""

from __future__ import annotations

import torch
from torch import nn

MODALITIES = ("text", "image")  # column order of every (B, 2) modality mask


class _ModalityProjections(nn.Module):
    """A linear map per configured modality into the shared width; None dims mean "never present"."""

    def __init__(self, text_dim: int | None, image_dim: int | None, dim: int) -> None:
        super().__init__()
        if text_dim is None and image_dim is None:
            raise ValueError("fusion needs at least one modality (text_dim or image_dim)")
        self.dim = dim
        self.proj = nn.ModuleDict(
            {name: nn.Linear(in_dim, dim) for name, in_dim in zip(MODALITIES, (text_dim, image_dim)) if in_dim}
        )

    def forward(
        self, text_emb: torch.Tensor | None, image_emb: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> projected (B, M, D) for the configured modalities (masked rows zero) and their (B, M) mask."""
        given = dict(zip(MODALITIES, (text_emb, image_emb)))
        batch = next((t.shape[0] for t in given.values() if t is not None), None)
        if batch is None:
            raise ValueError("fusion got no features: pass text_emb or image_emb")
        if mask is None:
            mask = torch.stack([torch.full((batch,), given[m] is not None) for m in MODALITIES], dim=1)  # (B, 2)
        projected, present = [], []
        for column, name in enumerate(MODALITIES):
            if name not in self.proj:
                continue
            features = given[name]
            weight = self.proj[name].weight
            if features is None:
                projected.append(weight.new_zeros(batch, self.dim))
                present.append(torch.zeros(batch, dtype=torch.bool, device=weight.device))
                continue
            keep = mask[:, column].to(features.device)  # (B,)
            if bool(keep.all()):  # nothing masked: no masked copy of the features to make
                projected.append(self.proj[name](features))
            else:
                clean = torch.where(keep[:, None], features, 0.0)  # (B, d_m): masked rows -> 0
                projected.append(torch.where(keep[:, None], self.proj[name](clean), 0.0))  # (B, D)
            present.append(keep)
        return torch.stack(projected, dim=1), torch.stack(present, dim=1)  # (B, M, D), (B, M)


class GatedFusion(nn.Module):
    """Softmax gate over the modalities an item has; an item with none gets a learned "no content" vector."""

    def __init__(self, text_dim: int | None, image_dim: int | None, dim: int) -> None:
        super().__init__()
        self.projections = _ModalityProjections(text_dim, image_dim, dim)
        n_modalities = len(self.projections.proj)
        self.gate = nn.ModuleList([nn.Linear(dim, 1) for _ in range(n_modalities)])  # one scorer per modality
        self.no_content = nn.Parameter(torch.zeros(dim))  # the representation of an item with no features

    def forward(
        self, text_emb: torch.Tensor | None, image_emb: torch.Tensor | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """text (B, Dt) | None, image (B, Di) | None, mask (B, 2) bool [text, image] -> (B, D)."""
        projected, present = self.projections(text_emb, image_emb, mask)  # (B, M, D), (B, M)
        hidden = torch.tanh(projected)  # one op over the contiguous stack, not a strided one per modality
        gate_logits = torch.cat([scorer(hidden[:, m]) for m, scorer in enumerate(self.gate)], dim=1)
        if bool(present.all()):  # nothing to mask: the same output in 4 fewer ops (the tower refits it 5x a round)
            return (torch.softmax(gate_logits, dim=1).unsqueeze(-1) * projected).sum(dim=1)
        gate_logits = gate_logits.masked_fill(~present, torch.finfo(gate_logits.dtype).min)  # (B, M)
        gate_weights = torch.softmax(gate_logits, dim=1) * present  # (B, M): renormalised over present ones
        fused = (gate_weights.unsqueeze(-1) * projected).sum(dim=1)  # (B, D)
        nothing = ~present.any(dim=1, keepdim=True)  # (B, 1)
        return torch.where(nothing, self.no_content.expand_as(fused), fused)


class ConcatFusion(nn.Module):
    """Concatenate per-modality projections (a learned "missing" vector fills an absent slot), then project."""

    def __init__(self, text_dim: int | None, image_dim: int | None, dim: int) -> None:
        super().__init__()
        self.projections = _ModalityProjections(text_dim, image_dim, dim)
        n_modalities = len(self.projections.proj)
        self.missing = nn.Parameter(torch.randn(n_modalities, dim) * 0.02)  # (M, D): one per modality
        self.out = nn.Linear(n_modalities * dim, dim)

    def forward(
        self, text_emb: torch.Tensor | None, image_emb: torch.Tensor | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """text (B, Dt) | None, image (B, Di) | None, mask (B, 2) bool [text, image] -> (B, D)."""
        projected, present = self.projections(text_emb, image_emb, mask)  # (B, M, D), (B, M)
        slots = torch.where(present.unsqueeze(-1), projected, self.missing.unsqueeze(0))  # (B, M, D)
        return self.out(slots.flatten(1))  # (B, M * D) -> (B, D)
