"""Item encoders: text tower (transformers), image tower (open_clip), fusion, LoRA, feature cache.

Importing this package is light: each name loads its submodule (and torch, transformers,
open_clip) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
