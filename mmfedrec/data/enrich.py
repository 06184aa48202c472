"""Add richer text and images to a catalogue from side files (e.g. TMDB overviews and posters).

Every image is opened once with Pillow here, so a broken file becomes a missing modality that is
counted in the notes, instead of a crash in the middle of encoding.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmfedrec.data.tabular import INTEGER, numeric_column, pick_column, read_table, text_ids
from mmfedrec.data.types import ORIGINAL_ID, Catalog
from mmfedrec.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ID_COLUMNS = ("movie_id", "item_id")


def readable_image(path: Path) -> bool:
    """Whether Pillow can open and verify the file (fast: headers and checksums, no full decode)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def enrich_catalog(
    catalog: Catalog,
    items_table: Path | None,
    text_column: str,
    image_dir: Path | None,
    image_audit: Path | None,
    encoding: str = "utf-8",
) -> tuple[Catalog, dict[str, object]]:
    """The catalogue with text from `items_table`, images from `image_dir`, audit-flagged images removed.

    Side files name items by their ids as written (`original_id` where the loader mapped text ids to
    int64, e.g. `sku-123.jpg`): the int64 stand-ins would silently match the wrong items.

    Args:
        items_table: CSV keyed by `movie_id` or `item_id` (duplicated ids: the first row wins); its
            `text_column` becomes the text as "<title>. <text>"; an empty value keeps the old text.
        image_dir: images named `<item_id>.<ext>` (jpg/jpeg/png/webp); unreadable ones are skipped.
        image_audit: CSV with an id column and `auto_flag`; items whose flag is not "ok" lose their image.
        encoding: of the two CSV files.

    Returns:
        The new catalogue and notes: counts of texts and images added, `unreadable_images` (ids),
        `flagged_images_excluded`.
    """
    items = catalog.items.copy()
    as_text = ORIGINAL_ID in items.columns
    keys = items[ORIGINAL_ID] if as_text else items["item_id"]
    notes: dict[str, object] = {}
    if items_table is not None:
        overview = _keyed_column(items_table, text_column, as_text, encoding)
        extra = keys.map(overview).astype("string").str.strip()
        use = extra.notna() & (extra.str.len() > 0)
        items["text"] = items["text"].where(~use, items["title"] + ". " + extra)
        notes["texts_from_table"] = int(use.sum())
    if image_dir is not None:
        images, unreadable = _scan_images(Path(image_dir), set(keys.tolist()), as_text)
        found = keys.map(images).astype("string")
        items["image_path"] = found.where(found.notna(), items["image_path"])
        notes["images_found"] = int(found.notna().sum())
        notes["unreadable_images"] = unreadable
    if image_audit is not None:
        flags = _keyed_column(image_audit, "auto_flag", as_text, encoding)
        flagged = keys.map(flags).fillna("ok").ne("ok") & items["image_path"].notna()
        items.loc[flagged, "image_path"] = pd.NA
        notes["flagged_images_excluded"] = int(flagged.sum())
    return Catalog(items, catalog.label_names, catalog.labels), notes


def _keyed_column(path: Path, column: str, as_text: bool, encoding: str) -> pd.Series:
    """`column` of a table indexed by its item id (first row wins for duplicated ids)."""
    table = read_table(path, encoding)
    key_column = pick_column(table, path, ID_COLUMNS)
    if column not in table.columns:
        raise DataError(path, f"no column {column!r}; found {list(table.columns)}", line=1)
    if as_text:
        ids = text_ids(table, key_column, path, encoding)
    else:
        ids = numeric_column(table, key_column, path, INTEGER, encoding)
    keep = ~pd.Series(ids).duplicated().to_numpy()
    return pd.Series(table[column].to_numpy()[keep], index=ids[keep])


def _scan_images(image_dir: Path, known: set[int | str], as_text: bool) -> tuple[dict[int | str, str], list[int | str]]:
    """{item id: absolute path} of the readable images for known items, and the unreadable ids."""
    if not image_dir.is_dir():
        raise DataError(image_dir, "image folder not found")
    images: dict[int | str, str] = {}
    unreadable: list[int | str] = []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        item_id = path.stem if as_text else int(path.stem) if path.stem.isdecimal() else None
        if item_id not in known or item_id in images:
            continue
        if readable_image(path):
            images[item_id] = str(path.resolve())
        else:
            unreadable.append(item_id)
    unreadable = sorted(set(unreadable) - images.keys())
    return images, unreadable


__all__ = ["enrich_catalog", "readable_image"]
