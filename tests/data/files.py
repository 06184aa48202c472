"""Tiny hand-written MovieLens releases for loader tests."""

from __future__ import annotations

from pathlib import Path

from mmfedrec.data.movielens import GENRES_100K

RATINGS_100K = [  # user, item, rating, timestamp; user 1 rates items 1 and 2 in the same second
    "1\t1\t5\t100",
    "1\t2\t3\t100",
    "1\t3\t4\t200",
    "1\t4\t1\t300",
    "2\t1\t4\t50",
    "2\t3\t2\t60",
    "2\t4\t5\t70",
    "3\t2\t5\t10",
]


def genre_flags(*genres: str) -> str:
    return "|".join("1" if name in genres else "0" for name in GENRES_100K)


ITEMS_100K = [
    "1|Toy Story (1995)|01-Jan-1995||http://x|" + genre_flags("Animation", "Children's", "Comedy"),
    "2|GoldenEye (1995)|01-Jan-1995||http://x|" + genre_flags("Action", "Adventure", "Thriller"),
    "3|Café Society (1995)|01-Jan-1995||http://x|" + genre_flags("Drama"),
    "4|Unknown (1996)|||http://x|" + genre_flags(),
]


def write_ml100k(root: Path, ratings: list[str] | None = None, items: list[str] | None = None) -> Path:
    """A valid ML-100K folder (u.data, u.item in latin-1, u.genre, u.user), with optional overrides."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text("\n".join(RATINGS_100K if ratings is None else ratings) + "\n")
    (root / "u.item").write_bytes(("\n".join(ITEMS_100K if items is None else items) + "\n").encode("latin-1"))
    (root / "u.genre").write_text("".join(f"{name}|{i}\n" for i, name in enumerate(GENRES_100K)) + "\n")
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return root


def write_ml1m(root: Path, ratings: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    default = ["1::1::5::978300760", "1::2::3::978302109", "2::2::4::978301968", "2::3::1::978300275"]
    (root / "ratings.dat").write_text("\n".join(default if ratings is None else ratings) + "\n")
    movies = ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Heat (1995)::Action|Crime|Thriller"]
    movies.append("3::Amélie (2001)::Comedy|Romance")
    (root / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (root / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return root
