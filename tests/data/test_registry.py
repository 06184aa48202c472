from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.config import DataConfig
from mmfedrec.data.registry import load_dataset, prepare_split, split_path
from tests.data.files import RATINGS_100K, write_ml100k


def spec_for(root: Path, cache: Path | None, **changes: object) -> DataConfig:
    return replace(DataConfig(dataset="movielens-100k", root=root, cache_dir=cache), **changes)


def test_cache_hit_equals_fresh_load_and_source_edits_invalidate(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path / "ml")
    spec = spec_for(root, tmp_path / "cache")
    fresh = load_dataset(spec)
    cached = load_dataset(spec)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    pd.testing.assert_frame_equal(cached.catalog.items, fresh.catalog.items)
    pd.testing.assert_frame_equal(cached.interactions.frame, fresh.interactions.frame)
    pd.testing.assert_frame_equal(cached.users, fresh.users)
    assert np.array_equal(cached.catalog.labels, fresh.catalog.labels)
    assert cached.catalog.label_names == fresh.catalog.label_names

    (root / "u.data").write_text("\n".join(RATINGS_100K[:3]) + "\n")
    os.utime(root / "u.data", ns=(1, 1))
    assert len(load_dataset(spec).interactions) == 3


def test_min_rating_and_kcore_apply(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path / "ml")
    dataset = load_dataset(spec_for(root, None, min_rating=4.0))
    assert sorted(dataset.interactions.frame["rating"].unique().tolist()) == [4.0, 5.0]
    assert dataset.notes["events_dropped_by_implicit"] == 3
    core = load_dataset(spec_for(root, None, kcore=2))  # user 3 goes, then item 2 (left with one event)
    assert sorted(core.interactions.frame["user_id"].unique().tolist()) == [1, 2]
    assert sorted(core.interactions.frame["item_id"].unique().tolist()) == [1, 3, 4]
    assert core.notes["events_dropped_by_kcore"] == 2


def test_split_ignores_file_row_order(tmp_path: Path) -> None:
    """Ties in time are broken by item id (splits.py), so shuffling the file's rows changes nothing."""
    rng = np.random.default_rng(0)
    rows = [f"{u}\t{i}\t4\t{1000 + i // 3}" for u in range(1, 6) for i in range(u, u + 95)]
    items = [f"{i}|Item {i} (1990)|||x|" + "|".join(["0"] * 19) for i in range(1, 110)]
    ordered = write_ml100k(tmp_path / "ordered", ratings=rows, items=items)
    shuffled = write_ml100k(tmp_path / "shuffled", ratings=[rows[k] for k in rng.permutation(len(rows))], items=items)
    first = prepare_split(spec_for(ordered, None), seed=3, n_negatives=3)
    second = prepare_split(spec_for(shuffled, None), seed=3, n_negatives=3)
    assert first.fingerprint() == second.fingerprint()
    # user 1's last second (1031) holds items 93, 94, 95: the highest id is the test item
    assert first.item_ids[first.test_items].tolist() == [95, 96, 97, 98, 99]


def test_prepare_split_is_cached_next_to_the_dataset(tmp_path: Path) -> None:
    spec = spec_for(write_ml100k(tmp_path / "ml"), tmp_path / "cache")
    split = prepare_split(spec, seed=1, n_negatives=0)  # user 1 rated every item
    path = split_path(spec, 1, 0)
    assert path.exists() and path.with_suffix(".json").exists()
    assert prepare_split(spec, seed=1, n_negatives=0).fingerprint() == split.fingerprint()
    assert '"order": "(timestamp, item_id)"' in path.with_suffix(".json").read_text()


def test_csv_without_timestamps_uses_random_order(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id\n" + "".join(f"1,{i}\n" for i in range(1, 6)) + "2,6\n2,7\n")
    spec = DataConfig(dataset="csv", interactions=events, cache_dir=tmp_path / "cache")
    prepare_split(spec, seed=0, n_negatives=1)
    assert '"order": "random"' in split_path(spec, 0, 1).with_suffix(".json").read_text()


def test_synthetic_images_live_in_the_cache(tmp_path: Path) -> None:
    spec = DataConfig(synthetic_users=30, synthetic_items=40, cache_dir=tmp_path)
    dataset = load_dataset(spec)
    image = Path(dataset.catalog.items["image_path"].iloc[0])
    assert image.exists() and image.parent.parent.parent == tmp_path.resolve()
    assert load_dataset(spec).catalog.items["image_path"].iloc[0] == str(image)
