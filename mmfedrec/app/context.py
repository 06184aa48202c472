"""Everything the app's handlers read: the loaded run, item pictures and lazily built search encoders."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmfedrec.app.run_loader import LoadedRun, load_run
from mmfedrec.app.tiles import PlaceholderTiles

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class AppContext:
    """One served run. Built once by the entry point and passed to `build_demo` and every handler."""

    run: LoadedRun
    tiles: PlaceholderTiles
    cache_dir: Path | None  # item-feature cache for search; dataset cache for the Training tab
    k: int = 10  # recommendations shown by default
    _item_images: list[str | None] = field(default_factory=list, repr=False)
    _user_index: dict[int, int] = field(default_factory=dict, repr=False)
    _history: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _search: dict[str, object] = field(default_factory=dict, repr=False)  # features, encoders (lazy)
    _augmenters: dict[str, object] = field(default_factory=dict, repr=False)  # by name, built on first use
    _augmented: dict[int, dict[str, Tensor]] = field(default_factory=dict, repr=False)  # by user (Recommend)

    def __post_init__(self) -> None:
        paths = self.run.catalog.items["image_path"].astype(object).tolist()
        self._item_images = [p if isinstance(p, str) and os.path.isfile(p) else None for p in paths]
        self._user_index = {int(u): i for i, u in enumerate(self.run.split.user_ids)}
        self._history = self.run.split.train_csr()
        self.titles = self.run.catalog.items["title"].astype(object).fillna("").astype(str).tolist()

    @property
    def user_ids(self) -> np.ndarray:
        return self.run.split.user_ids

    def user_index(self, user_id: object) -> int | None:
        """The split index of a raw user id given as int or text; None when unknown or malformed.

        Text may be a dropdown label ("75 · 12 items"), as a user who types one sends it.
        """
        try:
            value = float(str(user_id).split("·")[0].strip())
        except ValueError:
            return None
        if not value.is_integer():
            return None
        return self._user_index.get(int(value))

    def history(self, user: int) -> np.ndarray:
        """(n,) the user's training item indices, oldest first."""
        indptr, items = self._history
        return items[indptr[user] : indptr[user + 1]]

    def train_count(self, user: int) -> int:
        indptr, _ = self._history
        return int(indptr[user + 1] - indptr[user])

    def image(self, item: int) -> str:
        """The item's picture, or a placeholder tile with its title."""
        return self._item_images[item] or self.tiles.tile(self.titles[item])

    def has_image(self, item: int) -> bool:
        return self._item_images[item] is not None

    def tiles_for(self, items: np.ndarray, captions: list[str] | None = None) -> list[tuple[str, str]]:
        """Gallery value: (image path, caption) per item."""
        captions = captions if captions is not None else [self.titles[i] for i in items]
        return [(self.image(int(i)), c) for i, c in zip(items, captions)]

    def picture_folders(self) -> list[str]:
        """Folders of the item pictures, then of the placeholder tiles: fixed while the app runs, so served in place."""
        folders = sorted({str(Path(p).parent.resolve()) for p in self._item_images if p is not None})
        return [*folders, str(self.tiles.folder.resolve())]

    def allowed_paths(self) -> list[str]:
        """What the web server may serve: item pictures, tiles and the run's plots (not the run's
        model or data files)."""
        return [*self.picture_folders(), *(str(p.resolve()) for p in sorted(self.run.folder.glob("*.png")))]


def load_context(run_folder: Path, cache_dir: Path | None = None, work_dir: Path | None = None, k: int = 10):
    """Load `run_folder` and prepare what the handlers need.

    Args:
        cache_dir: dataset/feature cache (None: the run's own cache folder).
        work_dir: where placeholder tiles are drawn (None: a folder under the system temp dir).
    """
    run = load_run(Path(run_folder), cache_dir)
    cache = cache_dir if cache_dir is not None else run.config.data.cache_dir
    tiles_dir = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir()) / "mmfedrec-app-tiles"
    return AppContext(run, PlaceholderTiles(tiles_dir), None if cache is None else Path(cache), k)
