"""The real ML-100K with TMDB posters and overviews (research-only data, read in place)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mmfedrec.config import DataConfig
from mmfedrec.data.registry import load_dataset

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
