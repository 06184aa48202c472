"""Search the catalogue by text or image in the encoders' space (CLIP-style, cosine similarity).

A text query is embedded by the run's text tower and matched against item text features; an
uploaded image by its image tower against item image features. Features and towers load on
first use and stay in memory.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np

from mmfedrec.app.context import AppContext
from mmfedrec.errors import MmfedrecError

_LOCK = threading.Lock()  # one feature computation / encoder load at a time


def item_features(context: AppContext):
    """The run's item features (computed once and cached when the method used none)."""
    with _LOCK:
        features = context._search.get("features")
        if features is None:
            features = context.run.features
            if features is None:
                from mmfedrec.encoders.features import features_for_run

                config = context.run.config
                if context.cache_dir is not None:
                    config = dataclasses.replace(
                        config, data=dataclasses.replace(config.data, cache_dir=context.cache_dir)
                    )
                features = features_for_run(config, context.run.catalog)
            position = _positions(features.item_ids, context.run.split.item_ids)
            context._search["features"] = features
            context._search["position"] = position
        return features, context._search["position"]


def _positions(feature_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    import pandas as pd

    position = pd.Index(feature_ids).get_indexer(item_ids)
    if (position < 0).any():
        raise MmfedrecError(f"item {item_ids[position < 0][0]} has no features; the feature cache is stale")
    return position


def _text_encoder(context: AppContext, text_model: str):
    with _LOCK:
        encoder = context._search.get("text_encoder")
        if encoder is None:
            from mmfedrec.encoders.text import TextEncoder

            encoder = TextEncoder.from_pretrained(text_model)
            context._search["text_encoder"] = encoder
        return encoder


def _image_encoder(context: AppContext):
    with _LOCK:
        encoder = context._search.get("image_encoder")
        if encoder is None:
            import torch

            from mmfedrec.encoders.factory import create_encoder
            from mmfedrec.encoders.features import RANDOM_INIT_SEED

            settings = context.run.config.features
            with torch.random.fork_rng():  # the same seeded tower that encoded the items
                torch.manual_seed(RANDOM_INIT_SEED)
                encoder = create_encoder(settings.image_preset, settings.image_checkpoint or None)
            context._search["image_encoder"] = encoder
        return encoder


def encode_text(context: AppContext, text: str) -> np.ndarray:
    """(Dt,) unit-norm embedding of `text` by the tower that encoded the items' text features."""
    features, _ = item_features(context)
    if features.text is None:
        raise MmfedrecError("this run's item features have no text modality")
    return _text_encoder(context, features.metadata.get("text_model") or None).encode([text])[0]


def encode_image(context: AppContext, path: str | Path) -> np.ndarray:
    """(Di,) unit-norm embedding of the picture at `path` by the tower that encoded the items' images."""
    from mmfedrec.encoders.image import encode_images

    features, _ = item_features(context)
    if features.image is None or not context.run.config.features.image_preset:
        raise MmfedrecError("this run's item features have no image modality")
    vectors, readable = encode_images(_image_encoder(context), [str(path)])
    if not readable[0]:
        raise MmfedrecError("the image could not be decoded")
    return vectors[0]


def text_similarities(context: AppContext, query: str) -> tuple[np.ndarray, np.ndarray]:
    """(I,) cosine similarity of every item's text to `query` and (I,) which items have a text feature."""
    query_vector = encode_text(context, query)
    features, position = item_features(context)
    return features.text[position] @ query_vector, features.mask[position, 0]


def image_similarities(context: AppContext, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(I,) cosine similarity of every item's image to the picture at `path`, and (I,) which items have one."""
    vector = encode_image(context, path)
    features, position = item_features(context)
    return features.image[position] @ vector, features.mask[position, 1]


def image_tower_note(context: AppContext) -> str:
    """A caveat when the image tower is untrained (its matches follow colour and layout, not meaning)."""
    features = context._search.get("features")
    weights = None if features is None else features.metadata.get("image_weights")
    if weights == "random-init":
        return " The image tower is an untrained, seeded network: matches follow colour and layout, not content."
    return ""
