"""Item content for the tower: cached multimodal features, fused by a learned module."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mmfedrec.encoders.features import ItemFeatures
from mmfedrec.errors import MmfedrecError


class ItemContent(nn.Module):
    """forward() -> (I, dim + 1) fused content of the split's items, in the split's item order; the
    last column is the item's bias as its content predicts it (all an unseen item has).

    Only the modalities named in `modalities` reach the fusion (the no-text / no-image ablations);
    a missing text or image of one item is a masked modality, handled inside the fusion.
    """

    def __init__(
        self, features: ItemFeatures, item_ids: np.ndarray, modalities: tuple[str, ...], dim: int, fusion: str = "gated"
    ) -> None:
        super().__init__()
        from mmfedrec.encoders.fusion import ConcatFusion, GatedFusion

        position = pd.Index(features.item_ids).get_indexer(item_ids)
        if (position < 0).any():
            raise MmfedrecError(f"item {item_ids[position < 0][0]} has no cached features; recompute them")
        text = features.text if "text" in modalities else None
        image = features.image if "image" in modalities else None
        if text is None and image is None:
            raise MmfedrecError(f"no features for modalities {modalities}")
        self.register_buffer("text", None if text is None else torch.from_numpy(text[position]))
        self.register_buffer("image", None if image is None else torch.from_numpy(image[position]))
        self.register_buffer("mask", torch.from_numpy(features.mask[position]))
        fusion_class = {"gated": GatedFusion, "concat": ConcatFusion}[fusion]
        dims = None if text is None else text.shape[1], None if image is None else image.shape[1]
        self.fusion = fusion_class(*dims, dim + 1)

    def forward(self) -> Tensor:
        return self.fusion(self.text, self.image, self.mask)
