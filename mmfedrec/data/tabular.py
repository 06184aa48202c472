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
from pandas.api.types import is_datetime64_any_dtype

from mmfedrec.data.types import ORIGINAL_ID, Catalog, Dataset, make_catalog, make_interactions
from mmfedrec.errors import DataError, MmfedrecError

INTEGER, NUMBER, TEXT = "integer", "number", "text"
PANDAS_DTYPES = {INTEGER: "int64", NUMBER: "float64", TEXT: str}
INTERACTION_ALIASES = {"user_id": ("user_id", "user"), "item_id": ("item_id", "item")}
PARQUET_SUFFIXES = (".parquet", ".pq")
INT64_LIMIT = 2**63  # ids and timestamps are int64: larger values would wrap or lose digits
ENCODING_HINT = "; give the file's encoding with --encoding (e.g. latin-1 or cp1252)"
TIMESTAMP_EXPECTED = "epoch seconds or an ISO-8601 date such as 2020-09-13T12:26:40Z"


def read_text(path: Path, encoding: str, hint: str = "") -> str:
    """The whole file as text; missing, empty or undecodable files are a `DataError` with the line.

    `hint` ends a decoding error: what the user can change (the loaders with a fixed encoding have none).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, "file is empty; expected at least one record", line=1)
    try:
        return raw.decode(encoding)
    except LookupError:
        raise MmfedrecError(f"unknown encoding {encoding!r}; expected e.g. utf-8, latin-1 or cp1252") from None
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(path, f"cannot decode byte {raw[error.start]:#04x} as {encoding}{hint}", line=line) from None


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


def read_table(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV (with header, in `encoding`) or Parquet table, every CSV column as text for checked conversion.

    A leading byte-order mark is dropped: spreadsheet programs write one, and it would hide the first header.
    """
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a corrupt file
            raise DataError(path, f"not a readable Parquet file ({' '.join(str(error).split())})") from None
    else:
        text = read_text(path, encoding, ENCODING_HINT).removeprefix("\ufeff")
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.ParserError as error:
            raise DataError(path, f"malformed CSV ({' '.join(str(error).split())})") from None
        if not isinstance(frame.index, pd.RangeIndex):  # pandas makes a 1st column the index when rows are longer
            raise DataError(path, f"rows have more fields than the {len(frame.columns)} header names", line=2)
    if frame.empty:
        raise DataError(path, "table has no rows")
    return frame


def record_line(path: Path, row: int, encoding: str = "utf-8") -> int | None:
    """1-based line of data row `row` (0-based, after the header) of a CSV; None for Parquet."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return None
    reader = csv.reader(io.StringIO(path.read_text(encoding=encoding)))
    records = (reader.line_num for record in reader if record)
    for index, line in enumerate(records):
        if index == row + 1:  # record 0 is the header
            return line
    return None


def where(path: Path, row: int, encoding: str = "utf-8") -> tuple[str, int | None]:
    """("", line) for CSV files; ("row N: ", None) for Parquet, which has no lines."""
    line = record_line(path, row, encoding)
    return ("", line) if line is not None else (f"row {row}: ", None)


def _raise_at(frame: pd.DataFrame, column: str, path: Path, bad: np.ndarray, expected: str, encoding: str) -> NoReturn:
    """The `DataError` for the first row where `bad` is true, with its line and value."""
    row = int(np.flatnonzero(bad)[0])
    prefix, line = where(path, row, encoding)
    value = frame[column].iloc[row]
    raise DataError(path, f"{prefix}column {column}: expected {expected}, got {value!r}", line=line)


def numeric_column(
    frame: pd.DataFrame, column: str, path: Path, kind: str, encoding: str = "utf-8", numbers: pd.Series | None = None
) -> np.ndarray:
    """`frame[column]` as int64/float64; the first non-numeric value is a `DataError` with its line.

    `numbers`: the column already through `pd.to_numeric`, which is the slow part on large files.
    """
    values = pd.to_numeric(frame[column], errors="coerce") if numbers is None else numbers
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if kind == INTEGER and not bad.any():
        bad = ((values % 1 != 0) | ~(values.abs() < INT64_LIMIT)).to_numpy()
    if bad.any():
        _raise_at(frame, column, path, bad, _article(kind), encoding)
    return values.to_numpy(dtype=np.int64 if kind == INTEGER else np.float64)


def text_ids(frame: pd.DataFrame, column: str, path: Path, encoding: str = "utf-8") -> np.ndarray:
    """The ids as written, stripped; a blank one is a `DataError` with its line."""
    values = frame[column].astype("string").fillna("").str.strip()
    blank = (values == "").to_numpy(dtype=bool)
    if blank.any():
        _raise_at(frame, column, path, blank, "an id", encoding)
    return values.to_numpy(dtype=object)


def read_ids(frame: pd.DataFrame, column: str, path: Path, encoding: str = "utf-8") -> np.ndarray:
    """int64 ids when every non-blank value is a number (checked like any integer column), else `text_ids`."""
    numbers = pd.to_numeric(frame[column], errors="coerce")
    failed = frame[column][numbers.isna().to_numpy()]
    if (failed.astype("string").fillna("").str.strip() == "").all():
        return numeric_column(frame, column, path, INTEGER, encoding, numbers)
    return text_ids(frame, column, path, encoding)


def sorted_ids(ids: np.ndarray) -> np.ndarray:
    """The distinct ids in sorted order (hashing first: sorting every event's text id is slow)."""
    return np.sort(pd.unique(ids))


def dense_ids(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """int64 ids for the tables: integer ids unchanged, text ids their rank among the distinct `keys`."""
    if ids.dtype != object:
        return ids
    return pd.Index(sorted_ids(keys)).get_indexer(ids).astype(np.int64)


def timestamp_column(frame: pd.DataFrame, column: str, path: Path, encoding: str = "utf-8") -> np.ndarray:
    """int64 epoch seconds from epoch seconds (integer, or float floored to the second) or ISO-8601 dates.

    ISO dates (`2020-09-13`, `2020-09-13 12:26:40`, `2020-09-13T12:26:40Z`) without a zone are UTC, so
    the order of events, which splits hold out by, does not depend on the machine's time zone. Each
    value is read on its own: a column may mix both forms, as files appended by two exporters do.
    """
    values = frame[column]
    if is_datetime64_any_dtype(values):  # Parquet's own timestamps; to_numeric would read their nanoseconds
        numbers, dates = pd.Series(np.nan, index=values.index), pd.to_datetime(values, utc=True)
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.dtype.kind == "i" and numbers.notna().all():  # exact, also beyond float64's 53 bits
            return numbers.to_numpy(dtype=np.int64)
        text = values.astype("string").where(numbers.isna())
        dates = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    is_number = numbers.notna().to_numpy()
    epoch = np.floor(numbers.to_numpy(dtype=np.float64))
    bad = np.where(is_number, ~(np.abs(epoch) < INT64_LIMIT), dates.isna().to_numpy())  # also inf
    if bad.any():
        _raise_at(frame, column, path, bad, TIMESTAMP_EXPECTED, encoding)
    seconds = dates.dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    seconds[is_number] = epoch[is_number].astype(np.int64)
    return seconds


def pick_column(frame: pd.DataFrame, path: Path, names: tuple[str, ...]) -> str:
    """The first of `names` present in `frame`, else a `DataError` listing what the file has."""
    for name in names:
        if name in frame.columns:
            return name
    raise DataError(path, f"no column named {' or '.join(names)}; found {list(frame.columns)}", line=1)


def load_tabular(
    interactions_file: Path, items_file: Path | None, name: str = "tabular", *, encoding: str = "utf-8"
) -> Dataset:
    """A dataset from an interactions table and an optional items table (CSV files read in `encoding`).

    Interactions: `user`/`user_id`, `item`/`item_id`, optional `timestamp` (epoch seconds or ISO-8601,
    see `timestamp_column`; absent: all 0, split with random leave-one-out) and optional `rating`
    (default 1.0). Items: `item_id` and optional `title`, `text` (absent or empty: the title, so a
    titled item still has a text), `image_path` (relative paths resolve against the items file's
    folder; unreadable images become a missing modality, listed in notes). Without an items file,
    the catalogue holds the ids only.

    Ids are integers or text (`u0`, `sku-123`; an id column with any non-number is text). The tables
    downstream hold int64 ids: integers unchanged, text ids their rank in sorted order (0..n-1); the
    ids as written are kept in `catalog.items["original_id"]` and `users["original_id"]` (index: user
    id), read through `Catalog.original_ids` and `Dataset.original_user_ids`. Notes and errors show
    the ids as written.
    """
    table = read_table(interactions_file, encoding)
    user_column, item_column = (pick_column(table, interactions_file, names) for names in INTERACTION_ALIASES.values())
    users = read_ids(table, user_column, interactions_file, encoding)
    event_items = read_ids(table, item_column, interactions_file, encoding)
    notes: dict[str, object] = {}
    if items_file is None:
        keys = sorted_ids(event_items)
        none = [None] * len(keys)
        catalog = make_catalog(dense_ids(keys, keys), [f"item {key}" for key in keys], none, none)
    else:
        items = read_table(items_file, encoding)
        key_column = pick_column(items, items_file, ("item_id",))
        read = text_ids if event_items.dtype == object else read_ids
        keys = read(items, key_column, items_file, encoding)
        if keys.dtype == object and event_items.dtype != object:  # text ids in either file make both text
            event_items = text_ids(table, item_column, interactions_file, encoding)
        catalog = _items_catalog(items, items_file, keys, notes, encoding)
    _check_known_items(event_items, keys, interactions_file, items_file, encoding)
    if keys.dtype == object:
        catalog = Catalog(catalog.items.assign(**{ORIGINAL_ID: pd.array(keys, dtype="string")}))

    frame = pd.DataFrame({"user_id": dense_ids(users, users), "item_id": dense_ids(event_items, keys)})
    if "timestamp" in table.columns:
        frame["timestamp"] = timestamp_column(table, "timestamp", interactions_file, encoding)
    else:
        frame["timestamp"] = 0
        notes["timestamps"] = "absent: all 0, splits use random leave-one-out"
    has_rating = "rating" in table.columns
    frame["rating"] = numeric_column(table, "rating", interactions_file, NUMBER, encoding) if has_rating else 1.0
    user_table = None
    if users.dtype == object:
        names = pd.array(sorted_ids(users), dtype="string")
        user_table = pd.DataFrame({ORIGINAL_ID: names}, index=pd.Index(np.arange(len(names)), name="user_id"))
    return Dataset(name, catalog, make_interactions(frame), users=user_table, notes=notes)


def _items_catalog(
    items: pd.DataFrame, items_file: Path, keys: np.ndarray, notes: dict[str, object], encoding: str
) -> Catalog:
    """The catalogue of an items table whose ids are `keys`; unreadable images go to `notes`."""
    from mmfedrec.data.enrich import readable_image  # enrich imports this module's readers

    duplicated = pd.Series(keys).duplicated().to_numpy()
    if duplicated.any():
        prefix, line = where(items_file, int(np.flatnonzero(duplicated)[0]), encoding)
        raise DataError(items_file, f"{prefix}item_id {keys[duplicated][0]} appears twice", line=line)
    none: list[str | None] = [None] * len(keys)
    given_titles = _optional_text(items, "title", none)
    texts = [text or title for text, title in zip(_optional_text(items, "text", none), given_titles, strict=True)]
    titles = [title or f"item {key}" for title, key in zip(given_titles, keys, strict=True)]
    images = list(none)
    unreadable: list[int] = []
    for index, relative in enumerate(_optional_text(items, "image_path", none)):
        if relative is None:
            continue
        image = Path(items_file).parent / relative
        if readable_image(image):
            images[index] = str(image.resolve())
        else:
            unreadable.append(index)
    if unreadable:
        notes["unreadable_images"] = keys[unreadable].tolist()
    return make_catalog(dense_ids(keys, keys), titles, texts, images)


def _optional_text(items: pd.DataFrame, column: str, default: list[str | None]) -> list[str | None]:
    if column not in items.columns:
        return default
    values = items[column].astype("string")
    return [None if pd.isna(v) or not str(v).strip() else str(v) for v in values]


def _check_known_items(
    event_items: np.ndarray, keys: np.ndarray, path: Path, items_file: Path | None, encoding: str
) -> None:
    unknown = pd.Index(keys).get_indexer(event_items) < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        prefix, line = where(path, row, encoding)
        raise DataError(path, f"{prefix}item id {event_items[row]} is not in {items_file}", line=line)
