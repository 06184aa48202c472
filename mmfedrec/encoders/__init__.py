"""Item encoders: text tower (transformers), image tower (open_clip), fusion, LoRA, feature cache.

Importing this package is light: each name loads its submodule (and torch, transformers,
open_clip) on first use.
"""

from __future__ import annotations

from mmfedrec._lazy import lazy_exports

_EXPORTS = {
    "AlignmentConfig": "alignment",
    "AlignmentResult": "alignment",
    "train_image_tower": "alignment",
    "ClipEncoder": "factory",
    "create_encoder": "factory",
    "list_presets": "factory",
    "ItemFeatures": "features",
    "compute_item_features": "features",
    "ConcatFusion": "fusion",
    "GatedFusion": "fusion",
    "encode_images": "image",
    "add_lora": "lora",
    "lora_state_dict": "lora",
    "TextEncoder": "text",
    "packaged_text_model": "text",
}

__getattr__, __all__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
