"""Item features for the whole catalogue, cached as safetensors keyed by encoder + catalogue content."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfedrec.atomic import atomic_path
from mmfedrec.config.tree import RunConfig
from mmfedrec.data.types import Catalog

CACHE_FORMAT = "mmfedrec-item-features-v1"  # bump when the key or file layout changes
RANDOM_INIT_SEED = 0  # an untrained image tower is still seeded, so its features are reproducible and cacheable


@dataclass(frozen=True)
class ItemFeatures:
    """Per-item text and image features; `mask` says which rows are real (a missing modality is masked).

    `metadata` records what produced the features (text model, image preset and weights,
    where `image_weights == "random-init"` means an untrained tower), so nobody mistakes them.
    """

    item_ids: np.ndarray  # (I,) int64, catalogue order
    text: np.ndarray | None  # (I, Dt) float32, unit-norm rows; zero rows where mask[:, 0] is False
    image: np.ndarray | None  # (I, Di) float32, unit-norm rows; zero rows where mask[:, 1] is False
    mask: np.ndarray  # (I, 2) bool: [has text feature, has image feature]
    metadata: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def items_without_features(self) -> np.ndarray:
        """Ids of items with neither text nor image: the recommender can only use their id embedding."""
        return self.item_ids[~self.mask.any(axis=1)]

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename) so a crash never leaves a half cache file."""
        from safetensors.numpy import save_file

        tensors = {"item_ids": self.item_ids, "mask": self.mask}
        if self.text is not None:
            tensors["text"] = self.text
        if self.image is not None:
            tensors["image"] = self.image
        with atomic_path(path) as partial:
            save_file(tensors, str(partial), metadata={"format": CACHE_FORMAT, **self.metadata})

    @classmethod
    def load(cls, path: Path) -> ItemFeatures:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is no dict
        metadata.pop("format", None)
        return cls(tensors["item_ids"], tensors.get("text"), tensors.get("image"), tensors["mask"], metadata)


def item_texts(catalog: Catalog) -> list[str | None]:
    """What the text tower reads: the item text (loaders already prefix the title); None marks a masked text."""
    texts = catalog.items["text"].astype(object).tolist()
    return [str(text) if has else None for text, has in zip(texts, catalog.has_text)]


def catalog_fingerprint(catalog: Catalog) -> str:
    """Hash of ids, titles, texts and each image's path + size + mtime: changes with content, costs a stat per image."""
    digest = hashlib.blake2b(digest_size=16)
    for column in ("item_id", "title", "text", "image_path"):
        digest.update(
            json.dumps(
                catalog.items[column].astype(object).where(catalog.items[column].notna()).tolist(), default=str
            ).encode()
        )
    for path in catalog.items["image_path"].dropna().tolist():
        try:
            stat = os.stat(path)
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        except OSError:
            digest.update(b"missing;")
    return digest.hexdigest()


def _files_fingerprint(path: str | Path) -> str:
    """Names, sizes and mtimes of a weights file or folder (hashing 90 MB of weights each run would cost seconds)."""
    root = Path(path)
    if not root.exists():
        return f"hub:{path}"
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return ";".join(
        f"{p.relative_to(root) if root.is_dir() else p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files
    )


def encoder_config(
    text_model: str | None,
    text_max_length: int | None,
    image_preset: str | None,
    image_checkpoint: str | None,
    text_precision: str = "auto",
) -> dict[str, object]:
    """What determines the features, read from files only (no model is built), so a cache check is fast.

    Max length and precision enter resolved, so None/"auto" and their values share an entry and
    fp32 and bf16 features never do.
    """
    from mmfedrec.encoders.factory import RANDOM_INIT, load_preset
    from mmfedrec.encoders.text import model_max_length, resolve_text_precision

    config: dict[str, object] = {"format": CACHE_FORMAT}
    if text_model is not None:
        config["text"] = {
            "model": text_model,
            "weights": _files_fingerprint(text_model),
            "max_length": model_max_length(text_model) if text_max_length is None else int(text_max_length),
            "precision": resolve_text_precision(text_precision),
        }
    if image_preset is not None:
        if image_checkpoint is None:
            checkpoint: dict[str, object] = {"init": RANDOM_INIT, "seed": RANDOM_INIT_SEED}
        else:
            checkpoint = {"path": str(image_checkpoint), "weights": _files_fingerprint(image_checkpoint)}
        config["image"] = {"preset": load_preset(image_preset), "checkpoint": checkpoint}
    return config


def features_for_run(config: RunConfig, catalog: Catalog, progress: bool = False) -> ItemFeatures:
    """The item features a run's `features` section asks for, cached beside its data."""
    data, features = config.data, config.features
    computed, _ = compute_item_features(
        catalog,
        text_model=features.text_model or None,
        image_preset=features.image_preset or None,
        image_checkpoint=features.image_checkpoint or None,
        cache_dir=None if data.cache_dir is None else Path(data.cache_dir) / "features",
        progress=progress,
    )
    return computed


def compute_item_features(
    catalog: Catalog,
    text_model: str | Path | None = None,
    image_preset: str | None = "tiny",
    image_checkpoint: str | Path | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    *,
    use_text: bool = True,
    text_max_length: int | None = None,
    text_precision: str = "auto",
) -> tuple[ItemFeatures, bool]:
    """Encode every item (or load the cached result); returns (features, cache_hit).

    `text_model` None is the packaged MiniLM; `image_preset` None skips images; without
    `image_checkpoint` the image tower is random-init (seeded) and `metadata["image_weights"]`
    says so. `metadata` also holds encode throughput, and items with neither modality are in
    `features.items_without_features` rather than hidden behind zero rows. `text_max_length` None
    is the model's own limit; `text_precision` "auto" is bf16 autocast on CPUs with native bf16.
    """
    from mmfedrec.encoders.text import resolve_text_model

    text_source = resolve_text_model(text_model) if use_text else None
    checkpoint = str(image_checkpoint) if image_checkpoint is not None else None
    config = encoder_config(text_source, text_max_length, image_preset, checkpoint, text_precision)
    key = hashlib.blake2b(json.dumps(config, sort_keys=True, default=str).encode(), digest_size=16)
    key.update(catalog_fingerprint(catalog).encode())
    cache_path = None if cache_dir is None else Path(cache_dir) / f"item-features-{key.hexdigest()}.safetensors"
    if cache_path is not None and cache_path.is_file():
        return ItemFeatures.load(cache_path), True

    n_items = len(catalog)
    mask = np.zeros((n_items, 2), dtype=bool)
    metadata = {"n_items": str(n_items), "text_model": str(text_source), "image_preset": str(image_preset)}
    text = image = None
    if text_source is not None:
        text_config = config["text"]
        metadata["text_precision"] = text_config["precision"]
        metadata["text_max_length"] = str(text_config["max_length"])
        text, mask[:, 0], metadata["text_items_per_s"] = _encode_texts(
            catalog, text_source, text_config["max_length"], text_config["precision"], batch_size, progress
        )
    if image_preset is not None:
        image, mask[:, 1], metadata["image_items_per_s"], metadata["image_weights"] = _encode_image_column(
            catalog, image_preset, checkpoint, batch_size, progress
        )
    features = ItemFeatures(catalog.item_ids, text, image, mask, metadata)
    if cache_path is not None:
        features.save(cache_path)
    return features, False


def _encode_texts(
    catalog: Catalog, text_source: str, max_length: int, precision: str, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    from mmfedrec.encoders.text import TextEncoder

    encoder = TextEncoder.from_pretrained(text_source, max_length=max_length, precision=precision)
    texts = item_texts(catalog)
    present = np.array([t is not None for t in texts], dtype=bool)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    start = time.perf_counter()
    out[present] = encoder.encode([t for t in texts if t is not None], batch_size=batch_size, progress=progress)
    rate = present.sum() / max(time.perf_counter() - start, 1e-9)
    return out, present, f"{rate:.1f}"


def _encode_image_column(
    catalog: Catalog, preset: str, checkpoint: str | None, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, str, str]:
    import torch

    from mmfedrec.encoders.factory import create_encoder
    from mmfedrec.encoders.image import encode_images

    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_INIT_SEED)
        encoder = create_encoder(preset, checkpoint)
    has_image = catalog.has_image
    paths = catalog.items["image_path"].astype(object).tolist()
    out = np.zeros((len(paths), encoder.image_dim), dtype=np.float32)
    present = np.zeros(len(paths), dtype=bool)
    start = time.perf_counter()
    out[has_image], present[has_image] = encode_images(
        encoder, [p for p, h in zip(paths, has_image) if h], batch_size=batch_size, progress=progress
    )
    rate = has_image.sum() / max(time.perf_counter() - start, 1e-9)
    return out, present, f"{rate:.1f}", encoder.image_weights
