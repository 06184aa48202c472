from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmfedrec.data.movielens import load_movielens_1m, load_movielens_100k
from mmfedrec.errors import DataError
from tests.data.files import RATINGS_100K, write_ml1m, write_ml100k


def test_100k_loads_items_genres_users_and_default_text(tmp_path: Path) -> None:
    dataset = load_movielens_100k(write_ml100k(tmp_path))
    assert dataset.stats() == {
        "users": 3,
        "items": 4,
        "interactions": 8,
        "items_with_text": 4,
        "items_with_image": 0,
    }
    items = dataset.catalog.items.set_index("item_id")
    assert items.loc[1, "text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert items.loc[3, "title"] == "Café Society (1995)"  # latin-1 decoded
    assert items.loc[4, "text"] == "Unknown (1996)."  # no genre: the title alone, never empty
    catalog = dataset.catalog
    assert catalog.label_names[4] == "Children's"
    assert catalog.labels[0].nonzero()[0].tolist() == [3, 4, 5]
    assert dataset.users.loc[2, "occupation"] == "other"
    assert dataset.interactions.frame["rating"].dtype == np.float32


def test_1m_loads_pipe_separated_genres_and_users(tmp_path: Path) -> None:
    dataset = load_movielens_1m(write_ml1m(tmp_path))
    assert (dataset.interactions.n_users, len(dataset.catalog), len(dataset.interactions)) == (2, 3, 4)
    items = dataset.catalog.items.set_index("item_id")
    assert items.loc[3, "text"] == "Amélie (2001). Genres: Comedy, Romance."
    assert [dataset.catalog.label_names[i] for i in dataset.catalog.labels[1].nonzero()[0]] == [
        "Action",
        "Crime",
        "Thriller",
    ]
    assert dataset.users.loc[2, "age"] == 56


BAD_RATINGS = {
    "wrong column count": (["1\t1\t5\t100", "1\t2\t3"], 2, "expected 4 '\\t'-separated fields, found 3"),
    "extra column": (["1\t1\t5\t100", "1\t2\t3\t100", "2\t1\t5\t9\t9"], 3, "found 5"),
    "non-numeric id": (["1\t1\t5\t100", "x1\t2\t3\t100"], 2, "column user_id: expected an integer, got 'x1'"),
    "rating not a number": (["1\t1\t5\t100", "1\t2\tgood\t100"], 2, "column rating: expected a number"),
    "unknown item": (["1\t1\t5\t100", "1\t2\t5\t100", "1\t99\t5\t100"], 3, "item id 99 is not in the item file"),
    "blank line": (["1\t1\t5\t100", "", "1\t2\t5\t100"], 2, "found 1"),
}


@pytest.mark.parametrize("case", BAD_RATINGS, ids=list(BAD_RATINGS))
def test_bad_ratings_name_file_line_and_expectation(tmp_path: Path, case: str) -> None:
    lines, line, expected = BAD_RATINGS[case]
    root = write_ml100k(tmp_path, ratings=lines)
    with pytest.raises(DataError) as error:
        load_movielens_100k(root)
    assert error.value.line == line
    assert f"u.data:{line}: " in str(error.value)
    assert expected in str(error.value)


def test_undecodable_ratings_name_the_line(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path)
    (root / "u.data").write_bytes(b"1\t1\t5\t100\n1\t2\t3\t100\n1\t3\xff\t4\t200\n")
    with pytest.raises(DataError, match=r"u\.data:3: cannot decode byte 0xff as utf-8"):
        load_movielens_100k(root)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    root = write_ml100k(tmp_path)
    (root / "u.item").write_text("")
    with pytest.raises(DataError, match=r"u\.item:1: file is empty"):
        load_movielens_100k(root)
    (root / "u.data").unlink()
    with pytest.raises(DataError, match=r"u\.data: file not found"):
        load_movielens_100k(root)


def test_bad_item_line_and_1m_genre(tmp_path: Path) -> None:
    items = ["1|A (1995)|||x|" + "|".join(["0"] * 19), "2|B (1995)|||x|" + "|".join(["0"] * 18)]
    with pytest.raises(DataError, match=r"u\.item:2: expected 24 '\|'-separated fields, found 23"):
        load_movielens_100k(write_ml100k(tmp_path / "100k", ratings=RATINGS_100K[:1], items=items))
    root = write_ml1m(tmp_path / "1m")
    (root / "movies.dat").write_text("1::A (1995)::Comedy\n2::B (1995)::Comedy|Cartoon\n")
    with pytest.raises(DataError, match=r"movies\.dat:2: unknown genre 'Cartoon'"):
        load_movielens_1m(root)
    write_ml1m(root, ratings=["1::1::5::978300760", "1::2::five::978302109"])
    (root / "movies.dat").write_text("1::A (1995)::Comedy\n2::B (1995)::Drama\n")
    with pytest.raises(DataError, match=r"ratings\.dat:2: column rating: expected a number, got 'five'"):
        load_movielens_1m(root)
