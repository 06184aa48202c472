"""The two tables every dataset becomes: a `Catalog` of items and their `Interactions`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmfedrec.errors import DataError

CATALOG_COLUMNS = ("item_id", "title", "text", "image_path")
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "rating")
ORIGINAL_ID = "original_id"  # ids as the source wrote them, where a loader mapped text ids to int64


@dataclass(frozen=True)
class Catalog:
    """Items with their text and image.

    `items` has one row per item: `item_id` (int64, unique), `title` (str), `text` (str or <NA>:
    a missing text is a masked modality), `image_path` (absolute path or <NA>). `labels` is an
    optional multi-hot matrix (n_items, len(label_names)) aligned with `items` rows, e.g. genres
    or the synthetic ground-truth category, used by probes and coverage statistics. An optional
    `original_id` column holds the ids as written when they were text (`sku-123`); see `original_ids`.
    """

    items: pd.DataFrame
    label_names: tuple[str, ...] = ()
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        missing = [c for c in CATALOG_COLUMNS if c not in self.items.columns]
        if missing:
            raise DataError("catalog", f"missing columns {missing}; expected {list(CATALOG_COLUMNS)}")
        if self.items["item_id"].duplicated().any():
            dup = self.items.loc[self.items["item_id"].duplicated(), "item_id"].iloc[0]
            raise DataError("catalog", f"item_id {dup} appears more than once; expected unique ids")
        if self.labels is not None and self.labels.shape != (len(self.items), len(self.label_names)):
            raise DataError("catalog", f"labels shape {self.labels.shape} does not match items x label_names")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=np.int64)

    @property
    def original_ids(self) -> np.ndarray:
        """(n_items,) the ids to show users: `original_id` where the loader kept one, else `item_id`."""
        column = ORIGINAL_ID if ORIGINAL_ID in self.items.columns else "item_id"
        return self.items[column].to_numpy(dtype=object)

    @property
    def has_text(self) -> np.ndarray:
        text = self.items["text"]
        return (text.notna() & (text.astype("string").str.strip().str.len() > 0)).to_numpy(dtype=bool)

    @property
    def has_image(self) -> np.ndarray:
        return self.items["image_path"].notna().to_numpy(dtype=bool)

    def select(self, item_ids: np.ndarray) -> Catalog:
        """The catalogue restricted to (and ordered like) `item_ids`."""
        position = pd.Index(self.items["item_id"]).get_indexer(item_ids)
        if (position < 0).any():
            raise DataError("catalog", f"item_id {item_ids[position < 0][0]} is not in the catalogue")
        labels = None if self.labels is None else self.labels[position]
        return Catalog(self.items.iloc[position].reset_index(drop=True), self.label_names, labels)


@dataclass(frozen=True)
class Interactions:
    """User-item events: `user_id`, `item_id`, `timestamp` (int64 seconds), `rating` (float32)."""

    frame: pd.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in INTERACTION_COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError("interactions", f"missing columns {missing}; expected {list(INTERACTION_COLUMNS)}")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        return int(self.frame["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.frame["item_id"].nunique())


@dataclass(frozen=True)
class Dataset:
    """A named catalogue + interactions (+ optional per-user attributes for cross-silo clients)."""

    name: str
    catalog: Catalog
    interactions: Interactions
    users: pd.DataFrame | None = None  # index: user_id; columns: attributes (age, gender, ..., original_id)
    notes: dict[str, object] = field(default_factory=dict)  # e.g. counts of unreadable images

    def original_user_ids(self, user_ids: np.ndarray) -> np.ndarray:
        """The ids to show users for int64 `user_ids`: `users["original_id"]` where kept, else the ids."""
        if self.users is None or ORIGINAL_ID not in self.users.columns:
            return np.asarray(user_ids, dtype=object)
        return self.users[ORIGINAL_ID].reindex(user_ids).to_numpy(dtype=object)

    def note_lines(self, shown: int = 10) -> list[str]:
        """The loader's notes as lines a user reads: lists name their first items, not just a count."""
        lines = []
        for key, value in self.notes.items():
            if isinstance(value, list):
                more = f", ... ({len(value) - shown} more)" if len(value) > shown else ""
                value = f"{len(value)} items: {', '.join(map(str, value[:shown]))}{more}"
            lines.append(f"{key.replace('_', ' ')}: {value}")
        return lines

    def stats(self) -> dict[str, int]:
        """The counts `mmfedrec data stats` prints."""
        used = self.catalog.items["item_id"].isin(self.interactions.frame["item_id"].unique())
        catalog = self.catalog if used.all() else Catalog(self.catalog.items[used.to_numpy()])
        return {
            "users": self.interactions.n_users,
            "items": len(catalog),
            "interactions": len(self.interactions),
            "items_with_text": int(catalog.has_text.sum()),
            "items_with_image": int(catalog.has_image.sum()),
        }


def make_interactions(frame: pd.DataFrame) -> Interactions:
    """Canonical dtypes for an interactions frame."""
    return Interactions(
        pd.DataFrame(
            {
                "user_id": frame["user_id"].astype(np.int64),
                "item_id": frame["item_id"].astype(np.int64),
                "timestamp": frame["timestamp"].astype(np.int64),
                "rating": frame["rating"].astype(np.float32),
            }
        ).reset_index(drop=True)
    )


def make_catalog(
    item_ids: np.ndarray,
    titles: list[str],
    texts: list[str | None],
    image_paths: list[str | None],
    label_names: tuple[str, ...] = (),
    labels: np.ndarray | None = None,
) -> Catalog:
    """Canonical dtypes for a catalogue (nullable strings, int64 ids)."""
    items = pd.DataFrame(
        {
            "item_id": np.asarray(item_ids, dtype=np.int64),
            "title": pd.array(titles, dtype="string"),
            "text": pd.array(texts, dtype="string"),
            "image_path": pd.array(image_paths, dtype="string"),
        }
    )
    return Catalog(items, tuple(label_names), labels)
