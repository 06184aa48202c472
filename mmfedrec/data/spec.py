"""What to load: a typed description of a dataset, built once at the edge (CLI, apps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATASET_NAMES = ("synthetic", "movielens-100k", "movielens-1m", "csv", "parquet")


@dataclass(frozen=True)
class DatasetSpec:
    name: str = "synthetic"  # one of DATASET_NAMES
    root: Path | None = None  # folder of a MovieLens release
    interactions_file: Path | None = None  # csv/parquet: user,item,timestamp[,rating]
    items_file: Path | None = None  # csv/parquet: item_id,title,text,image_path
    items_table: Path | None = None  # enrichment: CSV keyed by item id with a text column (e.g. TMDB overview)
    text_column: str = "overview"  # which enrichment column becomes the item text
    image_dir: Path | None = None  # enrichment: images named <item_id>.<ext>
    image_audit: Path | None = None  # CSV with movie_id/item_id + auto_flag; rows != "ok" lose their image
    min_rating: float | None = None  # implicit feedback: keep rating >= this; None keeps every rating
    kcore: int = 0  # iteratively drop users/items with fewer events (0 = off)
    synthetic_users: int = 600  # size of the embedded default
    synthetic_items: int = 400
    data_seed: int = 0  # seeds the synthetic generator
    cache_dir: Path | None = None  # canonical Parquet cache; None = no cache
