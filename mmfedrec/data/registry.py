"""`load_dataset(spec)`: the one way code gets data, and `prepare_split` for its cached LOO split.

Steps: load by name -> enrich (text table, images, audit) -> implicit feedback (threshold, one
event per user-item pair) -> k-core. The result is cached as Parquet under `spec.cache_dir`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mmfedrec.atomic import write_atomic
from mmfedrec.config.tree import DATASET_NAMES, DataConfig
from mmfedrec.data import cache
from mmfedrec.data.enrich import enrich_catalog
from mmfedrec.data.feedback import kcore, to_implicit
from mmfedrec.data.movielens import load_movielens_1m, load_movielens_100k
from mmfedrec.data.splits import Split, leave_one_out, split_manifest
from mmfedrec.data.synthetic import generate_synthetic
from mmfedrec.data.tabular import load_tabular
from mmfedrec.data.types import Dataset
from mmfedrec.errors import MmfedrecError


def load_dataset(spec: DataConfig) -> Dataset:
    """The dataset `spec` describes, from the cache when its sources are unchanged."""
    folder = cache.dataset_folder(spec)
    if folder is not None:
        cached = cache.load_cached(folder)
        if cached is not None:
            return cached
    dataset = build_dataset(spec)
    if folder is not None:
        cache.save_dataset(dataset, folder)
    return dataset


def build_dataset(spec: DataConfig) -> Dataset:
    """Load, enrich and convert without touching the cache."""
    dataset = _load_raw(spec)
    catalog, notes = dataset.catalog, dict(dataset.notes)
    if spec.items_table or spec.image_dir or spec.image_audit:
        catalog, enrich_notes = enrich_catalog(
            catalog, spec.items_table, spec.text_column, spec.image_dir, spec.image_audit, spec.encoding
        )
        notes |= enrich_notes
    raw_events = len(dataset.interactions)
    interactions = to_implicit(dataset.interactions, spec.min_rating)
    notes["events_dropped_by_implicit"] = raw_events - len(interactions)
    if spec.kcore > 1:
        before = len(interactions)
        interactions = kcore(interactions, spec.kcore)
        notes["events_dropped_by_kcore"] = before - len(interactions)
    if len(interactions) == 0:
        raise MmfedrecError(f"no interactions left after min_rating={spec.min_rating} and kcore={spec.kcore}")
    return Dataset(dataset.name, catalog, interactions, users=dataset.users, notes=notes)


def _load_raw(spec: DataConfig) -> Dataset:
    if spec.dataset == "synthetic":
        return generate_synthetic(
            spec.synthetic_users, spec.synthetic_items, spec.data_seed, image_dir=synthetic_image_dir(spec)
        )
    if spec.dataset in ("movielens-100k", "movielens-1m"):
        if spec.root is None:
            raise MmfedrecError(f"--root (the folder of the {spec.dataset} release) is required for {spec.dataset}")
        loader = load_movielens_100k if spec.dataset == "movielens-100k" else load_movielens_1m
        return loader(spec.root)
    if spec.dataset == "hm-fashion":
        if spec.root is None:
            raise MmfedrecError(
                "--root (the folder of the H&M sample: interactions.csv, items.csv, images/) is required"
            )
        root = Path(spec.root)
        return load_tabular(root / "interactions.csv", root / "items.csv", spec.dataset, encoding=spec.encoding)
    if spec.dataset in ("csv", "parquet"):
        if spec.interactions is None:
            raise MmfedrecError(f"--interactions (the interactions file) is required for {spec.dataset}")
        return load_tabular(spec.interactions, spec.items, spec.dataset, encoding=spec.encoding)
    raise MmfedrecError(f"unknown dataset {spec.dataset!r}; expected one of {DATASET_NAMES}")


def synthetic_image_dir(spec: DataConfig) -> Path:
    """Images of the synthetic set: next to its cache, or in a reused temp folder without a cache."""
    folder = cache.dataset_folder(spec)
    if folder is None:
        folder = Path(tempfile.gettempdir()) / f"mmfedrec-synthetic-{cache.spec_key(spec)}"
    return folder / "images"


def split_order(spec: DataConfig, dataset: Dataset) -> str:
    """The leave-one-out order used: "time" when asked and the events carry a time order (not all
    the same timestamp), else "random"."""
    by_time = spec.split == "time" and dataset.interactions.frame["timestamp"].nunique() > 1
    return "time" if by_time else "random"


def split_path(spec: DataConfig, seed: int, n_negatives: int) -> Path | None:
    """Where `prepare_split` caches a split; None when caching is off."""
    folder = cache.dataset_folder(spec)
    return None if folder is None else folder / f"split-loo-{spec.split}-seed{seed}-neg{n_negatives}.safetensors"


def prepare_split(spec: DataConfig, seed: int, n_negatives: int = 99, use_cache: bool = True) -> Split:
    """The leave-one-out split of `spec`'s dataset for `seed`, cached next to the dataset.

    `spec.split` "time" orders each user's events by time; data without timestamps (all equal)
    is split in seeded random order instead, as "random" always is.
    """
    path = split_path(spec, seed, n_negatives) if use_cache else None
    if path is not None and path.exists():
        return Split.load(path)
    dataset = load_dataset(spec)
    by_time = split_order(spec, dataset) == "time"
    split = leave_one_out(dataset.interactions, seed, n_negatives, by_time, user_names=dataset.original_user_ids)
    if path is not None:
        split.save(path)
        write_atomic(path.with_suffix(".json"), split_manifest(split, seed, n_negatives, by_time))
    return split
