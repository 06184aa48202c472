"""Augmenters for sparse clients, one per file, behind one interface and one narrow factory."""

from __future__ import annotations

import numpy as np

from mmfedrec.errors import MmfedrecError
from mmfedrec.generators.augmenters.base import Augmenter, NoAugmenter
from mmfedrec.generators.augmenters.item_knn import ItemKNNAugmenter
from mmfedrec.generators.augmenters.popularity import PopularityAugmenter

AUGMENTER_NAMES = ("none", "diffusion", "popularity", "item-knn")

__all__ = [
    "AUGMENTER_NAMES",
    "Augmenter",
    "ItemKNNAugmenter",
    "NoAugmenter",
    "PopularityAugmenter",
    "augmenter_from_name",
]


def augmenter_from_name(name: str, item_embeddings: np.ndarray | None = None, **options: object) -> Augmenter:
    """Build an augmenter by name; diffusers loads only for "diffusion".

    Args:
        item_embeddings: (I, D) item features for "item-knn" (cosine neighbours) and "diffusion"
            (profiles projected into feature space); None = co-occurrence / interaction vectors.
        options: keyword arguments of the augmenter's constructor (e.g. `config=` for diffusion,
            `neighbours=` for item-knn).
    """
    if name == "none":
        return NoAugmenter()
    if name == "popularity":
        return PopularityAugmenter()
    if name == "item-knn":
        return ItemKNNAugmenter(item_embeddings, **options)
    if name == "diffusion":
        import torch

        from mmfedrec.generators.augmenters.diffusion import DiffusionAugmenter

        embeddings = None if item_embeddings is None else torch.as_tensor(item_embeddings, dtype=torch.float32)
        return DiffusionAugmenter(item_embeddings=embeddings, **options)
    raise MmfedrecError(f"unknown augmenter {name!r}; choose one of {AUGMENTER_NAMES}")
