"""MovieLens-100K and -1M in their GroupLens release formats (https://grouplens.org/datasets/movielens/).

Item text without enrichment is the title plus the genres ("Toy Story (1995). Genres: Animation,
Children's, Comedy."), so every item has an honest, non-empty text; `enrich_catalog` replaces it
with richer text (e.g. a TMDB overview) where available. Genres also become `Catalog.labels`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.data.tabular import INTEGER, NUMBER, TEXT, read_delimited, read_text
from mmfedrec.data.types import Catalog, Dataset, make_catalog, make_interactions
from mmfedrec.errors import DataError

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
GENRES_1M = GENRES_100K[1:]
RATING_COLUMNS = {"user_id": INTEGER, "item_id": INTEGER, "rating": NUMBER, "timestamp": INTEGER}


def default_text(title: str, genres: list[str]) -> str:
    """The item text when no richer source is given: what the release itself says about the item."""
    return f"{title}. Genres: {', '.join(genres)}." if genres else f"{title}."


def load_movielens_100k(root: Path) -> Dataset:
    """ML-100K from `u.data`, `u.item` (latin-1), `u.genre` and `u.user` (optional)."""
    root = Path(root)
    ratings = read_delimited(root / "u.data", RATING_COLUMNS, sep="\t")
    genre_names = _genre_names(root / "u.genre") if (root / "u.genre").exists() else GENRES_100K
    item_columns = {"item_id": INTEGER, "title": TEXT, "release": TEXT, "video_release": TEXT, "url": TEXT}
    item_columns |= {f"genre_{i}": INTEGER for i in range(len(genre_names))}
    items = read_delimited(root / "u.item", item_columns, sep="|", encoding="latin-1")
    labels = items[[f"genre_{i}" for i in range(len(genre_names))]].to_numpy(dtype=np.int64)
    bad = np.flatnonzero(((labels != 0) & (labels != 1)).any(axis=1))
    if len(bad):
        raise DataError(root / "u.item", "genre flags must be 0 or 1", line=int(bad[0]) + 1)
    catalog = _catalog(items, genre_names, labels.astype(np.uint8), root / "u.item")
    users = None
    if (root / "u.user").exists():
        user_columns = {"user_id": INTEGER, "age": INTEGER, "gender": TEXT, "occupation": TEXT, "zip": TEXT}
        users = read_delimited(root / "u.user", user_columns, sep="|", encoding="latin-1").set_index("user_id")
    return _dataset("movielens-100k", catalog, ratings, root / "u.data", users)


def load_movielens_1m(root: Path) -> Dataset:
    """ML-1M from `ratings.dat`, `movies.dat` (latin-1, pipe-separated genres) and `users.dat` (optional)."""
    root = Path(root)
    ratings = read_delimited(root / "ratings.dat", RATING_COLUMNS, sep="::")
    movies_path = root / "movies.dat"
    items = read_delimited(movies_path, {"item_id": INTEGER, "title": TEXT, "genres": TEXT}, "::", "latin-1")
    position = {name: index for index, name in enumerate(GENRES_1M)}
    labels = np.zeros((len(items), len(GENRES_1M)), dtype=np.uint8)
    for row, genres in enumerate(items["genres"]):
        for genre in filter(None, genres.split("|")):
            if genre not in position:
                raise DataError(movies_path, f"unknown genre {genre!r}; expected one of {GENRES_1M}", line=row + 1)
            labels[row, position[genre]] = 1
    catalog = _catalog(items, GENRES_1M, labels, movies_path)
    users = None
    if (root / "users.dat").exists():
        user_columns = {"user_id": INTEGER, "gender": TEXT, "age": INTEGER, "occupation": INTEGER, "zip": TEXT}
        users = read_delimited(root / "users.dat", user_columns, "::", "latin-1").set_index("user_id")
    return _dataset("movielens-1m", catalog, ratings, root / "ratings.dat", users)


def _genre_names(path: Path) -> tuple[str, ...]:
    """u.genre lists `name|index`; the order of the flags in u.item."""
    lines = [line.split("|") for line in read_text(path, "latin-1").splitlines() if line.strip()]
    for number, fields in enumerate(lines, start=1):
        if len(fields) != 2 or not fields[1].strip().isdigit() or int(fields[1]) != number - 1:
            raise DataError(path, f"expected 'name|{number - 1}'", line=number)
    return tuple(fields[0] for fields in lines)


def _catalog(items: pd.DataFrame, genre_names: tuple[str, ...], labels: np.ndarray, path: Path) -> Catalog:
    ids = items["item_id"].to_numpy(dtype=np.int64)
    duplicated = pd.Series(ids).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(path, f"item id {ids[row]} appears more than once", line=row + 1)
    titles = items["title"].tolist()
    names = np.asarray(genre_names, dtype=object)
    texts = [default_text(title, list(names[row.astype(bool)])) for title, row in zip(titles, labels, strict=True)]
    return make_catalog(ids, titles, texts, [None] * len(ids), genre_names, labels)


def _dataset(name: str, catalog: Catalog, ratings: pd.DataFrame, path: Path, users: pd.DataFrame | None) -> Dataset:
    unknown = ~np.isin(ratings["item_id"].to_numpy(), catalog.item_ids)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        item = int(ratings["item_id"].iloc[row])
        raise DataError(path, f"item id {item} is not in the item file", line=row + 1)
    return Dataset(name, catalog, make_interactions(ratings), users=users)
