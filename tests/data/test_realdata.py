"""The real ML-100K with TMDB posters and overviews (research-only data, read in place)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from mmfedrec.config import DataConfig
from mmfedrec.data.registry import load_dataset, prepare_split

pytestmark = pytest.mark.realdata


def test_movielens_100k_with_posters_and_overviews(shared_data: Path) -> None:
    posters = shared_data / "ml-100k-posters-tmdb"
    spec = DataConfig(
        dataset="movielens-100k",
        root=shared_data / "ml-100k",
        items_table=posters / "items.csv",
        image_dir=posters / "posters",
    )
    start = time.perf_counter()
    dataset = load_dataset(spec)
    assert time.perf_counter() - start < 5.0
    stats = dataset.stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert stats["items_with_image"] >= 1600
    assert stats["items_with_text"] == 1682
    assert dataset.notes["texts_from_table"] == 1664
    assert dataset.notes["unreadable_images"] == []
    assert len(dataset.catalog.label_names) == 19

    audited = load_dataset(DataConfig(**{**spec.__dict__, "image_audit": posters / "_generated_poster_audit.csv"}))
    assert audited.notes["flagged_images_excluded"] == 59
    assert audited.stats()["items_with_image"] == 1604


def test_the_hm_fashion_sample_is_a_registered_dataset(shared_data: Path, tmp_path: Path) -> None:
    """`--dataset hm-fashion --root FOLDER` reads the sample's own files (photos, texts, purchases)."""
    root = shared_data / "hm-fashion-sample"
    if not (root / "interactions.csv").exists():
        pytest.skip(f"{root} not found")
    dataset = load_dataset(DataConfig(dataset="hm-fashion", root=root, cache_dir=None))
    stats = dataset.stats()
    assert (stats["users"], stats["interactions"]) == (1364, 27443)  # repeat purchases collapse to one
    assert stats["items_with_image"] == stats["items_with_text"] == 17033


def test_a_random_split_differs_from_the_time_split_and_is_seeded(shared_data: Path) -> None:
    spec = DataConfig(dataset="movielens-100k", root=shared_data / "ml-100k", cache_dir=None)
    by_time = prepare_split(spec, 0, 5, use_cache=False)
    at_random = prepare_split(dataclasses.replace(spec, split="random"), 0, 5, use_cache=False)
    again = prepare_split(dataclasses.replace(spec, split="random"), 0, 5, use_cache=False)
    assert (at_random.test_items != by_time.test_items).mean() > 0.5
    assert (at_random.test_items == again.test_items).all()
