"""LoRA adapters (Hu et al. 2021) on either tower via peft; the adapter tensors are a client's upload.

open_clip's attention is `nn.MultiheadAttention`, whose forward reads `out_proj.weight`
directly: a LoRA on `out_proj` is never called and silently gets no gradient. peft's
MultiheadAttention LoRA wraps the whole `attn` module instead.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

IMAGE_TOWER_TARGETS = ("attn", "c_fc", "c_proj")  # open_clip VisionTransformer residual blocks
TEXT_TOWER_TARGETS = ("query", "key", "value")  # BERT-style self-attention (MiniLM)


def add_lora(
    module: nn.Module,
    tower: Literal["image", "text"],
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
) -> nn.Module:
    """Wrap `module` (e.g. `model.visual` or `model.text.transformer`) so only LoRA tensors train.

    Returns the peft model; its base weights are frozen. Rank and alpha are the usual LoRA knobs.
    """
    from peft import LoraConfig, get_peft_model

    targets = IMAGE_TOWER_TARGETS if tower == "image" else TEXT_TOWER_TARGETS
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    return get_peft_model(module, config)


def lora_state_dict(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors: what a federated client uploads (never the frozen base weights)."""
    from peft import get_peft_model_state_dict

    return {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(peft_model).items()}


def load_lora_state_dict(peft_model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Set the adapter tensors (e.g. the aggregated ones a server sends back)."""
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(peft_model, state)
