"""Federated LoRA on the image tower (FedIT-style federated instruction/adapter tuning, Zhang et
al., 2024; LoRA: Hu et al., 2021).

Each selected client fine-tunes LoRA adapters of the open_clip image tower on the image-text
pairs of the items it interacted with (CLIP loss against the frozen text tower) and uploads only
the adapter tensors (`peft.get_peft_model_state_dict`); the server averages them, weighted by
pairs (FedAvg). Clients run one after another, so this is for small scales (the `tiny` preset);
its cost per client and round is reported: adapter bytes against the whole tower's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from mmfedrec.encoders.factory import ClipEncoder
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation import fedavg


@dataclass(frozen=True)
class FederatedLoraConfig:
    rounds: int = 3
    clients_per_round: int = 8
    local_steps: int = 2  # full-batch steps on a client's pairs per round
    rank: int = 4  # LoRA rank on attn, c_fc, c_proj
    lr: float = 5e-3
    seed: int = 0


@dataclass
class FederatedLoraResult:
    round_losses: list[float] = field(default_factory=list)  # mean local loss per round
    upload_bytes_per_client: int = 0  # the adapters a client sends
    tower_bytes: int = 0  # what sending the whole image tower would cost
    seconds_per_round: float = 0.0


def text_targets(encoder: ClipEncoder, texts: list[str]) -> Tensor:
    """(N, D) unit-norm embeddings of `texts` in the CLIP space, from the frozen text tower."""
    from transformers import AutoTokenizer

    from mmfedrec.encoders.text import TextEncoder

    tokenizer = AutoTokenizer.from_pretrained(encoder.text_model)
    pooled = TextEncoder(encoder.model.text.transformer, tokenizer).encode(texts, normalize=False)  # (N, H)
    with torch.no_grad():
        return nn.functional.normalize(encoder.model.text.proj(torch.from_numpy(pooled)), dim=-1)


def train_federated_lora(
    encoder: ClipEncoder,
    pixels: Tensor,
    targets: Tensor,
    client_pairs: list[np.ndarray],
    config: FederatedLoraConfig,
) -> tuple[nn.Module, FederatedLoraResult]:
    """Rounds of federated LoRA; returns the image tower with the averaged adapters, and the cost.

    Args:
        pixels: (N, 3, S, S) preprocessed images of the catalogue's image-text pairs.
        targets: (N, D) their text embeddings (`text_targets`).
        client_pairs: per client, the indices of the pairs of the items it interacted with.
    """
    from open_clip import ClipLoss

    from mmfedrec.encoders.lora import add_lora, load_lora_state_dict, lora_state_dict

    eligible = [k for k, pairs in enumerate(client_pairs) if len(pairs) >= 2]  # CLIP loss needs 2 pairs
    if not eligible:
        raise MmfedrecError("federated LoRA needs clients with at least 2 image-text pairs")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    tower = add_lora(encoder.model.visual, "image", rank=config.rank)
    global_adapters = lora_state_dict(tower)
    logit_scale = encoder.model.logit_scale.detach().exp().clamp(max=100.0)
    loss_fn = ClipLoss()
    result = FederatedLoraResult(
        upload_bytes_per_client=sum(t.numel() * t.element_size() for t in global_adapters.values()),
        tower_bytes=sum(p.numel() * p.element_size() for p in encoder.model.visual.parameters()),
    )
    started = time.perf_counter()
    for _ in range(config.rounds):
        chosen = rng.choice(eligible, size=min(config.clients_per_round, len(eligible)), replace=False)
        uploads, weights, losses = [], [], []
        for client in chosen:
            load_lora_state_dict(tower, global_adapters)
            optimizer = torch.optim.Adam([p for p in tower.parameters() if p.requires_grad], lr=config.lr)
            index = torch.from_numpy(client_pairs[client])
            for _ in range(config.local_steps):
                features = nn.functional.normalize(tower(pixels[index]), dim=-1)  # (b, D)
                loss = loss_fn(features, targets[index], logit_scale)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            uploads.append(lora_state_dict(tower))  # adapters only: the whole upload
            weights.append(len(index))
        global_adapters = fedavg(uploads, weights)
        result.round_losses.append(float(np.mean(losses)))
    load_lora_state_dict(tower, global_adapters)
    result.seconds_per_round = (time.perf_counter() - started) / config.rounds
    return tower, result
