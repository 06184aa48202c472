"""The canonical Parquet cache of a loaded dataset, keyed by its spec and its source files.

A folder `<cache_dir>/<name>-<key>/` holds `catalog.parquet`, `labels.parquet`,
`interactions.parquet`, `users.parquet` (when present) and `meta.json`. Each file is written
atomically and `meta.json` last, so a folder with `meta.json` is complete. The key hashes every
spec field but `cache_dir`, plus the size and mtime of every source file, so an edited source is
reloaded rather than served stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.atomic import atomic_path, write_atomic
from mmfedrec.config.tree import DataConfig
from mmfedrec.data.types import Catalog, Dataset, Interactions

CACHE_VERSION = 2  # bump when the canonical form or a loader's output changes


def spec_key(spec: DataConfig) -> str:
    """16 hex digits identifying what `spec` loads, including the state of its source files."""
    fields = {name: str(value) for name, value in asdict(spec).items() if name not in ("cache_dir", "split")}
    payload = {"version": CACHE_VERSION, "spec": fields, "sources": _source_stats(spec)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _source_stats(spec: DataConfig) -> list[list[object]]:
    files: list[Path] = []
    for folder in (spec.root, spec.image_dir):
        if folder is not None and Path(folder).is_dir():
            files.extend(sorted(Path(folder).iterdir()))
    files.extend(Path(p) for p in (spec.interactions, spec.items, spec.items_table, spec.image_audit) if p)
    stats: list[list[object]] = []
    for path in files:
        try:
            stat = path.stat()
            stats.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        except OSError:
            stats.append([str(path), "missing"])
    return stats


def dataset_folder(spec: DataConfig) -> Path | None:
    """Where `spec`'s canonical form is cached; None when caching is off."""
    if spec.cache_dir is None:
        return None
    return Path(spec.cache_dir) / f"{spec.dataset}-{spec_key(spec)}"


def save_dataset(dataset: Dataset, folder: Path) -> None:
    """Write the canonical form; `meta.json` last, so readers never see half a cache."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = dataset.catalog
    _write_parquet(catalog.items, folder / "catalog.parquet")
    labels = catalog.labels if catalog.labels is not None else np.zeros((len(catalog), 0), dtype=np.uint8)
    _write_parquet(pd.DataFrame(labels, columns=list(catalog.label_names)), folder / "labels.parquet")
    _write_parquet(dataset.interactions.frame, folder / "interactions.parquet")
    if dataset.users is not None:
        _write_parquet(dataset.users, folder / "users.parquet")
    meta = {
        "version": CACHE_VERSION,
        "name": dataset.name,
        "label_names": list(catalog.label_names),
        "has_labels": catalog.labels is not None,
        "notes": dataset.notes,
    }
    write_atomic(folder / "meta.json", json.dumps(meta, indent=2, default=_plain))


def load_cached(folder: Path) -> Dataset | None:
    """The cached dataset, or None when the folder holds no complete cache of this version."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != CACHE_VERSION:
        return None
    items = pd.read_parquet(folder / "catalog.parquet")
    for column in ("title", "text", "image_path"):
        items[column] = items[column].astype("string")
    labels = pd.read_parquet(folder / "labels.parquet").to_numpy(dtype=np.uint8) if meta["has_labels"] else None
    catalog = Catalog(items, tuple(meta["label_names"]), labels)
    users_path = folder / "users.parquet"
    users = pd.read_parquet(users_path) if users_path.exists() else None
    interactions = Interactions(pd.read_parquet(folder / "interactions.parquet"))
    return Dataset(meta["name"], catalog, interactions, users=users, notes=meta["notes"])


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp)


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays that loaders put into notes."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in dataset notes")
