from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmfedrec.data.splits import leave_one_out
from mmfedrec.data.synthetic import generate_synthetic
from mmfedrec.data.types import Dataset
from mmfedrec.evaluation.protocols import evaluate


@pytest.fixture(scope="module")
def default_set(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return generate_synthetic(image_dir=tmp_path_factory.mktemp("synthetic"))


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path, default_set: Dataset) -> None:
    again = generate_synthetic(image_dir=tmp_path / "a")
    assert again.interactions.frame.equals(default_set.interactions.frame)
    assert again.catalog.items["text"].equals(default_set.catalog.items["text"])
    first = Path(default_set.catalog.items["image_path"].iloc[0])
    assert (tmp_path / "a" / first.name).read_bytes() == first.read_bytes()
    other = generate_synthetic(n_users=50, n_items=60, seed=1, image_dir=tmp_path / "b")
    assert not other.catalog.items["text"].equals(default_set.catalog.items["text"].iloc[:60])


def test_shape_modalities_labels_and_sparse_users(default_set: Dataset) -> None:
    stats = default_set.stats()
    assert stats["users"] == 600
    assert stats["items_with_text"] == stats["items_with_image"] == stats["items"] > 350
    labels = default_set.catalog.labels
    assert labels.shape == (400, 8) and (labels.sum(axis=1) == 1).all()
    with Image.open(default_set.catalog.items["image_path"].iloc[0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    counts = default_set.interactions.frame["user_id"].value_counts()
    assert counts.min() >= 3
    assert (counts - 2 <= 5).mean() > 0.4  # many users have <= 5 training events after leave-one-out
    times = default_set.interactions.frame.groupby("user_id")["timestamp"]
    assert times.apply(lambda t: t.is_monotonic_increasing and t.is_unique).all()


def test_images_are_reused_when_already_drawn(tmp_path: Path) -> None:
    generate_synthetic(n_users=20, n_items=30, image_dir=tmp_path)
    (tmp_path / "1.png").write_bytes(b"marker")  # a redraw would overwrite it
    generate_synthetic(n_users=20, n_items=30, image_dir=tmp_path)
    assert (tmp_path / "1.png").read_bytes() == b"marker"
    generate_synthetic(n_users=20, n_items=30, seed=5, image_dir=tmp_path)  # another seed redraws
    assert (tmp_path / "1.png").read_bytes().startswith(b"\x89PNG")


def test_category_preference_beats_popularity_beats_random(default_set: Dataset) -> None:
    split = leave_one_out(default_set.interactions, seed=0)
    category = default_set.catalog.select(split.item_ids).labels.argmax(axis=1)  # (I,)
    histogram = np.zeros((split.n_users, 8))  # (U, C) training events per category
    np.add.at(histogram, (split.train_users, category[split.train_items]), 1.0)
    popularity = np.bincount(split.train_items, minlength=split.n_items).astype(float)
    rng = np.random.default_rng(0)
    scorers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "category": lambda users: histogram[users][:, category] + 1e-3 * popularity,
        "popularity": lambda users: np.tile(popularity, (len(users), 1)),
        "random": lambda users: rng.random((len(users), split.n_items)),
    }
    hr = {name: evaluate(scorer, split, "test")["sampled"]["hr@10"] for name, scorer in scorers.items()}
    assert hr["category"] > hr["popularity"] + 0.2
    assert hr["popularity"] > hr["random"] + 0.08
