"""Train the image tower against the pretrained text tower on the catalogue's own image-text pairs.

Contrastive alignment as in CLIP (Radford et al. 2021) with open_clip's `ClipLoss`, in the spirit
of LiT (Zhai et al. 2022) reversed: here the text side is the locked (or LoRA-tuned) pretrained
tower and the image side learns. Quality is measured, not assumed: text->image Recall@10 on
held-out items, next to chance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmfedrec.data.types import Catalog
from mmfedrec.errors import MmfedrecError


@dataclass(frozen=True)
class AlignmentConfig:
    preset: str = "tiny"
    epochs: int = 30  # ~1.5k ML-100K posters: enough to pass 5x chance on CPU in a few minutes
    batch_size: int = 128  # in-batch negatives; larger is better for ClipLoss while CPU allows
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    heldout_fraction: float = 0.1  # items never seen in training, for Recall@10
    text_lora_rank: int = 0  # 0 locks the text tower; > 0 LoRA-tunes it (slower: the text tower runs each step)
    augment: bool = True  # random shift + horizontal flip: the catalogue is small
    seed: int = 0
    text_max_length: int | None = None  # the model's own limit, as the item features use


@dataclass
class AlignmentResult:
    train_items: int
    heldout_items: int
    heldout_recall_at_10: float  # text->image, among held-out items
    initial_recall_at_10: float  # the same before training (random-init image tower)
    chance_recall_at_10: float  # 10 / heldout_items
    epoch_losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None


def recall_at_k(text_features: torch.Tensor, image_features: torch.Tensor, k: int = 10) -> float:
    """Fraction of texts whose own image (same row) ranks in the top k images by cosine similarity."""
    similarity = text_features @ image_features.T  # (N, N)
    own = similarity.diagonal().unsqueeze(1)  # (N, 1)
    rank = (similarity > own).sum(dim=1)  # (N,): images scoring strictly higher than the right one
    return float((rank < k).double().mean())


def train_image_tower(
    catalog: Catalog,
    config: AlignmentConfig = AlignmentConfig(),
    *,
    text_model: str | Path | None = None,
    checkpoint_path: Path | None = None,
    progress: bool = True,
) -> AlignmentResult:
    """Contrastively train `config.preset`'s image tower on items having both text and image.

    Saves a safetensors checkpoint (loadable by `create_encoder(preset, pretrained=path)`)
    when `checkpoint_path` is given.
    """
    from accelerate import Accelerator
    from open_clip import ClipLoss

    from mmfedrec.encoders.factory import create_encoder
    from mmfedrec.encoders.features import item_texts
    from mmfedrec.encoders.image import load_images
    from mmfedrec.encoders.text import TextEncoder, mean_pool

    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        encoder = create_encoder(config.preset, text_model=text_model)
    model = encoder.model
    texts = item_texts(catalog)
    both = catalog.has_text & catalog.has_image
    paths = [p for p, keep in zip(catalog.items["image_path"].astype(object), both) if keep]
    pixels, readable = load_images(paths, encoder.preprocess)  # (N, 3, S, S)
    pair_texts = [t for t, keep in zip(texts, both) if keep]
    pair_texts = [t for t, ok in zip(pair_texts, readable) if ok]
    pixels = pixels[torch.from_numpy(readable)]
    n_pairs = len(pair_texts)
    n_heldout = max(1, round(n_pairs * config.heldout_fraction))
    if n_pairs - n_heldout < 2:
        raise MmfedrecError(f"contrastive training needs image-text pairs; the catalogue has {n_pairs}")
    order = torch.randperm(n_pairs, generator=generator)
    heldout, train = order[:n_heldout], order[n_heldout:]

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder.text_model)
    text_tower = TextEncoder(model.text.transformer, tokenizer, config.text_max_length)
    if config.text_lora_rank > 0:
        tokens = text_tower.tokenize(pair_texts)  # padded (N, T) ids and mask: the tower runs each step
    else:
        pooled = torch.from_numpy(text_tower.encode(pair_texts, normalize=False))  # (N, H): locked, so once

    if config.text_lora_rank > 0:
        from mmfedrec.encoders.lora import add_lora

        model.text.transformer = add_lora(model.text.transformer, "text", rank=config.text_lora_rank)
    else:
        model.text.transformer.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def embed_texts(index: torch.Tensor) -> torch.Tensor:
        """(b,) pair indices -> (b, D) unit-norm text embeddings in the shared space."""
        if config.text_lora_rank > 0:
            ids, mask = tokens["input_ids"][index].to(device), tokens["attention_mask"][index].to(device)
            hidden = model.text.transformer(input_ids=ids, attention_mask=mask).last_hidden_state  # (b, T, H)
            text_pooled = mean_pool(hidden, mask)  # (b, H): the same pooling as open_clip's MeanPooler
        else:
            text_pooled = pooled[index].to(device)
        return nn.functional.normalize(model.text.proj(text_pooled), dim=-1)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            image_features = model.encode_image(pixels[heldout].to(device), normalize=True)
            return recall_at_k(embed_texts(heldout), image_features)

    accelerator = Accelerator()
    device = accelerator.device
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = max(1, steps_per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=config.warmup_fraction
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    initial_recall = evaluate()
    loss_fn = ClipLoss()
    epoch_losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc="align image tower", unit="step")
    for _ in range(config.epochs):
        model.train()
        if config.text_lora_rank == 0:
            model.text.transformer.eval()  # locked: keep its dropout off
        shuffled = train[torch.randperm(len(train), generator=generator)]
        losses = []
        for start in range(0, len(shuffled), config.batch_size):
            index = shuffled[start : start + config.batch_size]
            if len(index) < 2:
                continue
            images = pixels[index]
            if config.augment:
                images = _augment(images, generator)
            image_features = model.encode_image(images.to(device), normalize=True)  # (b, D)
            text_features = embed_texts(index)  # (b, D)
            logit_scale = model.logit_scale.exp().clamp(max=100.0)
            loss = loss_fn(image_features, text_features, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        epoch_losses.append(float(np.mean(losses)) if losses else float("nan"))
    if bar is not None:
        bar.close()
    final_recall = evaluate()
    model = accelerator.unwrap_model(model)
    result = AlignmentResult(
        train_items=len(train),
        heldout_items=n_heldout,
        heldout_recall_at_10=final_recall,
        initial_recall_at_10=initial_recall,
        chance_recall_at_10=min(1.0, 10 / n_heldout),
        epoch_losses=epoch_losses,
    )
    if checkpoint_path is not None:
        result.checkpoint = save_checkpoint(model, checkpoint_path, config, result, encoder.text_model)
    return result


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, S, S) -> same: random shift of up to S/16 px (reflect padding) and horizontal flip."""
    size = images.shape[-1]
    pad = max(1, size // 16)
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")  # (B, 3, S+2p, S+2p)
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    shifted = padded[:, :, dy : dy + size, dx : dx + size]
    flip = torch.rand(images.shape[0], generator=generator) < 0.5  # (B,)
    return torch.where(flip[:, None, None, None], shifted.flip(-1), shifted)


def save_checkpoint(
    model: nn.Module, path: Path, config: AlignmentConfig, result: AlignmentResult, text_model: str
) -> Path:
    """Safetensors of everything training changed; a locked text transformer is left out (it is the pretrained one)."""
    import json

    from safetensors.torch import save_file

    if config.text_lora_rank > 0:
        model.text.transformer = model.text.transformer.merge_and_unload()  # plain weights: loads without peft
    state = {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if config.text_lora_rank > 0 or not name.startswith("text.transformer.")
    }
    summary = {k: v for k, v in asdict(result).items() if k not in ("checkpoint", "epoch_losses")}
    metadata = {
        "preset": config.preset,
        "text_model": text_model,
        "weights": "contrastively trained on catalogue image-text pairs (not pretrained)",
        "config": json.dumps(asdict(config)),
        "result": json.dumps(summary),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path
