"""Generic CSV/Parquet datasets, and the checked file readers every loader shares.

Files are parsed fast with pandas; only when something is wrong are they re-scanned line by line,
so that the `DataError` names the exact 1-based line and what was expected there.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from mmfedrec.data.types import Dataset, make_catalog, make_interactions
from mmfedrec.errors import DataError

INTEGER, NUMBER, TEXT = "integer", "number", "text"
PANDAS_DTYPES = {INTEGER: "int64", NUMBER: "float64", TEXT: str}
INTERACTION_ALIASES = {"user_id": ("user_id", "user"), "item_id": ("item_id", "item")}
PARQUET_SUFFIXES = (".parquet", ".pq")
INT64_LIMIT = 2**63  # ids and timestamps are int64: larger values would wrap or lose digits


def read_text(path: Path, encoding: str) -> str:
    """The whole file as text; missing, empty or undecodable files are a `DataError` with the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, "file is empty; expected at least one record", line=1)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(path, f"cannot decode byte {raw[error.start]:#04x} as {encoding}", line=line) from None


def read_delimited(path: Path, columns: dict[str, str], sep: str, encoding: str = "utf-8") -> pd.DataFrame:
    """A header-less, unquoted file (GroupLens style) with exactly `columns` (name -> kind) per line.

    Multi-character separators (`::`) are mapped to a control character so the C parser applies.
    """
    text = read_text(path, encoding)
    if len(sep) > 1:
        text = text.replace(sep, "\x1f")
        sep = "\x1f"
    names = list(columns)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            names=names,
            dtype={name: PANDAS_DTYPES[kind] for name, kind in columns.items()},
            quoting=csv.QUOTE_NONE,
            index_col=False,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except (ValueError, OverflowError, pd.errors.ParserError):
        frame = None
    numbers = [name for name, kind in columns.items() if kind == NUMBER]
    if (
        frame is None
        or text.count(sep) != len(frame) * (len(names) - 1)
        or not np.isfinite(frame[numbers].to_numpy(dtype=np.float64)).all()
    ):
        _raise_first_bad_line(path, text, columns, sep)
    return frame


def _raise_first_bad_line(path: Path, text: str, columns: dict[str, str], sep: str) -> NoReturn:
    shown_sep = "::" if sep == "\x1f" else sep
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split(sep)
        if len(fields) != len(columns):
            raise DataError(
                path, f"expected {len(columns)} {shown_sep!r}-separated fields, found {len(fields)}", line=number
            )
        for (name, kind), value in zip(columns.items(), fields, strict=True):
            if not _parses(value, kind):
                raise DataError(path, f"column {name}: expected {_article(kind)}, got {value!r}", line=number)
    raise DataError(path, "could not be parsed")


def _parses(value: str, kind: str) -> bool:
    if kind == TEXT:
        return True
    try:
        return -INT64_LIMIT <= int(value) < INT64_LIMIT if kind == INTEGER else math.isfinite(float(value))
    except ValueError:
        return False


def _article(kind: str) -> str:
    return "an integer" if kind == INTEGER else "a number" if kind == NUMBER else "text"


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (with header, utf-8) or Parquet table, every column as text for checked conversion."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a corrupt file
            raise DataError(path, f"not a readable Parquet file ({' '.join(str(error).split())})") from None
    else:
        text = read_text(path, "utf-8")
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.ParserError as error:
            raise DataError(path, f"malformed CSV ({' '.join(str(error).split())})") from None
        if not isinstance(frame.index, pd.RangeIndex):  # pandas makes a 1st column the index when rows are longer
            raise DataError(path, f"rows have more fields than the {len(frame.columns)} header names", line=2)
    if frame.empty:
        raise DataError(path, "table has no rows")
    return frame


def record_line(path: Path, row: int) -> int | None:
    """1-based line of data row `row` (0-based, after the header) of a CSV; None for Parquet."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return None
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
    records = (reader.line_num for record in reader if record)
    for index, line in enumerate(records):
        if index == row + 1:  # record 0 is the header
            return line
    return None


def where(path: Path, row: int) -> tuple[str, int | None]:
    """("", line) for CSV files; ("row N: ", None) for Parquet, which has no lines."""
    line = record_line(path, row)
    return ("", line) if line is not None else (f"row {row}: ", None)


def numeric_column(frame: pd.DataFrame, column: str, path: Path, kind: str) -> np.ndarray:
    """`frame[column]` as int64/float64; the first non-numeric value is a `DataError` with its line."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if kind == INTEGER and not bad.any():
        bad = ((values % 1 != 0) | ~(values.abs() < INT64_LIMIT)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        prefix, line = where(path, row)
        value = frame[column].iloc[row]
        raise DataError(path, f"{prefix}column {column}: expected {_article(kind)}, got {value!r}", line=line)
    return values.to_numpy(dtype=np.int64 if kind == INTEGER else np.float64)


def pick_column(frame: pd.DataFrame, path: Path, names: tuple[str, ...]) -> str:
    """The first of `names` present in `frame`, else a `DataError` listing what the file has."""
    for name in names:
        if name in frame.columns:
            return name
    raise DataError(path, f"no column named {' or '.join(names)}; found {list(frame.columns)}", line=1)


def load_tabular(interactions_file: Path, items_file: Path | None, name: str = "tabular") -> Dataset:
    """A dataset from an interactions table and an optional items table.

    Interactions: `user`/`user_id`, `item`/`item_id`, optional `timestamp` (absent: all 0, split with
    random leave-one-out) and optional `rating` (default 1.0). Items: `item_id` and optional `title`,
    `text`, `image_path` (relative paths resolve against the items file's folder; unreadable images
    become a missing modality, listed in notes). Without an items file, the catalogue holds the ids only.
    """
    from mmfedrec.data.enrich import readable_image  # enrich imports this module's readers

    table = read_table(interactions_file)
    columns = {key: pick_column(table, interactions_file, names) for key, names in INTERACTION_ALIASES.items()}
    frame = pd.DataFrame({key: numeric_column(table, col, interactions_file, INTEGER) for key, col in columns.items()})
    notes: dict[str, object] = {}
    if "timestamp" in table.columns:
        frame["timestamp"] = numeric_column(table, "timestamp", interactions_file, INTEGER)
    else:
        frame["timestamp"] = 0
        notes["timestamps"] = "absent: all 0, splits use random leave-one-out"
    has_rating = "rating" in table.columns
    frame["rating"] = numeric_column(table, "rating", interactions_file, NUMBER) if has_rating else 1.0

    if items_file is None:
        ids = np.unique(frame["item_id"].to_numpy())
        catalog = make_catalog(ids, [f"item {i}" for i in ids], [None] * len(ids), [None] * len(ids))
    else:
        items = read_table(items_file)
        ids = numeric_column(items, pick_column(items, items_file, ("item_id",)), items_file, INTEGER)
        duplicated = pd.Series(ids).duplicated().to_numpy()
        if duplicated.any():
            prefix, line = where(items_file, int(np.flatnonzero(duplicated)[0]))
            raise DataError(items_file, f"{prefix}item_id {ids[duplicated][0]} appears twice", line=line)
        titles = _optional_text(items, "title", [f"item {i}" for i in ids])
        texts = _optional_text(items, "text", [None] * len(ids))
        images: list[str | None] = [None] * len(ids)
        unreadable: list[int] = []
        for index, relative in enumerate(_optional_text(items, "image_path", [None] * len(ids))):
            if relative is None:
                continue
            image = Path(items_file).parent / relative
            if readable_image(image):
                images[index] = str(image.resolve())
            else:
                unreadable.append(int(ids[index]))
        if unreadable:
            notes["unreadable_images"] = unreadable
        catalog = make_catalog(ids, titles, texts, images)
    _check_known_items(frame, catalog.item_ids, interactions_file, items_file)
    return Dataset(name, catalog, make_interactions(frame), notes=notes)


def _optional_text(items: pd.DataFrame, column: str, default: list[str | None]) -> list[str | None]:
    if column not in items.columns:
        return default
    values = items[column].astype("string")
    return [None if pd.isna(v) or not str(v).strip() else str(v) for v in values]


def _check_known_items(frame: pd.DataFrame, known: np.ndarray, path: Path, items_file: Path | None) -> None:
    unknown = ~np.isin(frame["item_id"].to_numpy(), known)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        prefix, line = where(path, row)
        item = int(frame["item_id"].iloc[row])
        raise DataError(path, f"{prefix}item id {item} is not in {items_file}", line=line)
