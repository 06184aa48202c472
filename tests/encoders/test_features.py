from __future__ import annotations

import time

import numpy as np

from mmfedrec.data.types import make_catalog
from mmfedrec.encoders.features import ItemFeatures, compute_item_features


def test_round_trip_and_cache_hit(poster_catalog, tmp_path) -> None:
    catalog = poster_catalog.select(poster_catalog.item_ids[:8])
    first, hit = compute_item_features(catalog, cache_dir=tmp_path, batch_size=4, progress=False)
    assert not hit
    assert first.text.shape == (8, 384) and first.image.shape == (8, 128)
    assert first.mask.all()
    assert first.metadata["image_weights"] == "random-init"

    start = time.perf_counter()
    second, hit = compute_item_features(catalog, cache_dir=tmp_path, batch_size=4, progress=False)
    assert hit and time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(first.item_ids, second.item_ids)
    np.testing.assert_array_equal(first.text, second.text)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.mask, second.mask)
    assert second.metadata["image_weights"] == "random-init"


def test_changed_catalogue_misses_the_cache(poster_catalog, tmp_path) -> None:
    catalog = poster_catalog.select(poster_catalog.item_ids[:3])
    compute_item_features(catalog, image_preset=None, cache_dir=tmp_path, progress=False)
    items = catalog.items.copy()
    items.loc[0, "text"] = "A different overview."
    changed = make_catalog(
        items["item_id"], items["title"].tolist(), items["text"].tolist(), items["image_path"].tolist()
    )
    _, hit = compute_item_features(changed, image_preset=None, cache_dir=tmp_path, progress=False)
    assert not hit


def test_missing_modalities_are_masked_and_listed(poster_catalog, tmp_path) -> None:
    paths = poster_catalog.items["image_path"].tolist()[:3]
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    catalog = make_catalog(
        np.array([10, 11, 12, 13]),
        ["a", "b", "c", "d"],
        ["A red poster.", None, None, "A blue poster."],
        [paths[0], paths[1], None, str(tmp_path / "broken.jpg")],
    )
    features, _ = compute_item_features(catalog, progress=False)
    np.testing.assert_array_equal(features.mask, [[True, True], [False, True], [False, False], [True, False]])
    np.testing.assert_array_equal(features.items_without_features, [12])
    assert not features.text[1].any() and not features.image[3].any()


def test_save_load_without_a_modality(tmp_path) -> None:
    features = ItemFeatures(np.arange(3), np.ones((3, 4), np.float32), None, np.ones((3, 2), bool), {"k": "v"})
    features.save(tmp_path / "f.safetensors")
    loaded = ItemFeatures.load(tmp_path / "f.safetensors")
    assert loaded.image is None and loaded.metadata == {"k": "v"}


def test_cache_key_separates_precisions_and_resolves_defaults(poster_catalog, tmp_path) -> None:
    from mmfedrec.encoders.features import encoder_config
    from mmfedrec.encoders.text import packaged_text_model

    model = str(packaged_text_model())
    fp32 = encoder_config(model, None, None, None, "fp32")
    bf16 = encoder_config(model, None, None, None, "bf16")
    assert fp32 != bf16 and fp32["text"]["precision"] == "fp32" and bf16["text"]["precision"] == "bf16"
    assert fp32["text"]["max_length"] == 256 == encoder_config(model, 256, None, None, "fp32")["text"]["max_length"]

    catalog = poster_catalog.select(poster_catalog.item_ids[:2])
    first, hit = compute_item_features(
        catalog, image_preset=None, cache_dir=tmp_path, progress=False, text_precision="fp32"
    )
    assert not hit and first.metadata["text_precision"] == "fp32" and first.metadata["text_max_length"] == "256"
    second, hit = compute_item_features(
        catalog, image_preset=None, cache_dir=tmp_path, progress=False, text_precision="bf16"
    )
    assert not hit and second.metadata["text_precision"] == "bf16"
    assert (first.text * second.text).sum(axis=1).min() > 0.999
    _, hit = compute_item_features(
        catalog, image_preset=None, cache_dir=tmp_path, progress=False, text_precision="fp32"
    )
    assert hit
