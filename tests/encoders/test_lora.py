from __future__ import annotations

import torch

from mmfedrec.encoders.factory import create_encoder
from mmfedrec.encoders.lora import add_lora, lora_state_dict


def test_every_lora_param_of_the_image_tower_gets_a_gradient() -> None:
    """LoRA-B starts at zero (so LoRA-A's first gradient is zero): take one step, then every adapter must learn.

    A LoRA on open_clip's `out_proj` would fail this: nn.MultiheadAttention never calls it.
    """
    torch.manual_seed(0)
    visual = add_lora(create_encoder("tiny").model.visual, "image", rank=4)
    adapters = {name: p for name, p in visual.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in name for name in adapters)
    optimizer = torch.optim.SGD(adapters.values(), lr=0.1)
    pixels = torch.randn(4, 3, 64, 64)  # (B, 3, S, S)
    for _ in range(2):
        optimizer.zero_grad()
        visual(pixels).pow(2).sum().backward()
        optimizer.step()
    assert not [name for name, p in adapters.items() if p.grad is None or p.grad.abs().sum() == 0]


def test_adapter_state_dict_holds_only_lora_tensors(tiny_encoder) -> None:
    text = add_lora(create_encoder("tiny").model.text.transformer, "text", rank=4)
    state = lora_state_dict(text)
    assert state and all("lora_" in name for name in state)
    base_params = sum(p.numel() for name, p in text.named_parameters() if "lora_" not in name)
    assert sum(t.numel() for t in state.values()) < base_params / 50
