"""Property tests: whatever bytes the data files hold, loaders either load or raise `DataError`
naming the file on one line; never another exception type."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmfedrec.data.enrich import enrich_catalog
from mmfedrec.data.movielens import load_movielens_100k
from mmfedrec.data.tabular import load_tabular
from mmfedrec.data.types import Dataset, make_catalog
from mmfedrec.errors import DataError
from tests.data.files import RATINGS_100K, write_ml100k

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HUGE = st.one_of(st.integers(min_value=2**63, max_value=2**80), st.integers(min_value=-(2**80), max_value=-(2**63) - 1))


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` truncated, with bytes replaced or inserted, lines duplicated, or emptied."""
    kind = draw(st.sampled_from(["truncate", "replace", "insert", "duplicate", "empty"]))
    at = draw(st.integers(min_value=0, max_value=len(original)))
    if kind == "truncate":
        return original[:at]
    if kind == "replace":
        return original[:at] + draw(st.binary(min_size=1, max_size=4)) + original[at + 4 :]
    if kind == "insert":
        return original[:at] + draw(st.binary(min_size=1, max_size=8)) + original[at:]
    if kind == "duplicate":
        lines = original.splitlines(keepends=True)
        return b"".join(lines + lines[: draw(st.integers(1, len(lines)))])
    return draw(st.sampled_from([b"", b"\n", b"  \n\n"]))


def loads_or_names(paths: list[Path], load: Callable[[], object]) -> object | None:
    """The loaded value, or None after checking the `DataError` names one of `paths` on one line."""
    try:
        return load()
    except DataError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message
        assert any(message.startswith(f"{path}:") for path in paths), f"{message!r} names none of {paths}"
        return None


@pytest.mark.parametrize("name", ["u.data", "u.item", "u.genre", "u.user"])
@PROPERTY
@given(data=st.data())
def test_ml100k_files_load_or_name_the_file(name: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = write_ml100k(Path(folder))
        (root / name).write_bytes(data.draw(mutated((root / name).read_bytes()), label=name))
        release = [root / file for file in ("u.data", "u.item", "u.genre", "u.user")]  # files must also agree
        loads_or_names(release, lambda: load_movielens_100k(root))


@PROPERTY
@given(row=st.integers(0, len(RATINGS_100K) - 1), column=st.integers(0, 1), value=HUGE)
def test_ids_beyond_int64_are_a_data_error(row: int, column: int, value: int) -> None:
    lines = [line.split("\t") for line in RATINGS_100K]
    lines[row][column] = str(value)
    with tempfile.TemporaryDirectory() as folder:
        root = write_ml100k(Path(folder), ratings=["\t".join(fields) for fields in lines])
        with pytest.raises(DataError, match=rf"u\.data:{row + 1}: column (user|item)_id: expected an integer"):
            load_movielens_100k(root)


@PROPERTY
@given(copies=st.lists(st.integers(0, len(RATINGS_100K) - 1), min_size=1, max_size=5))
def test_duplicate_rows_load_as_separate_events(copies: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = write_ml100k(Path(folder), ratings=RATINGS_100K + [RATINGS_100K[k] for k in copies])
        dataset = load_movielens_100k(root)
    assert len(dataset.interactions) == len(RATINGS_100K) + len(copies)  # one event per pair comes later


CELL = st.one_of(
    st.integers(min_value=-5, max_value=30).map(str),
    HUGE.map(str),
    st.sampled_from(["", "x", "1.5", "1e3", "nan", "inf", "-inf", '"', "1,2", " 7 "]),
)


@st.composite
def interactions_csv(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(["user,item", "user_id,item_id,timestamp,rating", "user,item,rating", "item,x"]))
    rows = draw(st.lists(st.lists(CELL, min_size=1, max_size=5), max_size=6))
    text = "\n".join([header, *(",".join(cells) for cells in rows)]) + "\n"
    encoded = text.encode(draw(st.sampled_from(["utf-8", "utf-16"])))
    return draw(st.one_of(st.just(encoded), mutated(encoded)))


@PROPERTY
@given(events=interactions_csv())
def test_csv_interactions_load_or_name_the_file(events: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        path.write_bytes(events)
        loads_or_names([path], lambda: load_tabular(path, None))


@PROPERTY
@given(row=st.integers(0, 2), column=st.integers(0, 1), value=HUGE)
def test_csv_ids_beyond_int64_are_a_data_error_not_wrapped(row: int, column: int, value: int) -> None:
    rows = [["1", "10"], ["2", "11"], ["3", "10"]]
    rows[row][column] = str(value)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        path.write_text("user,item\n" + "".join(f"{a},{b}\n" for a, b in rows))
        with pytest.raises(DataError, match=rf"events\.csv:{row + 2}: column (user|item): expected an integer"):
            load_tabular(path, None)


@PROPERTY
@given(rows=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=4))
def test_csv_rows_longer_than_the_header_are_a_data_error(rows: list[tuple[int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        path.write_text("user,item\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))  # pandas would index by col 1
        with pytest.raises(DataError, match=r"events\.csv:2: rows have more fields than the 2 header names"):
            load_tabular(path, None)


@PROPERTY
@given(items=st.binary(max_size=200), image=st.binary(max_size=64), item_file_ok=st.booleans())
def test_items_files_and_non_images(items: bytes, image: bytes, item_file_ok: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        events = Path(folder) / "events.csv"
        events.write_text("user,item\n1,10\n2,11\n")
        (Path(folder) / "poster.png").write_bytes(image)
        path = Path(folder) / "items.csv"
        path.write_bytes(
            b"item_id,title,image_path\n10,Ten,poster.png\n11,Eleven,missing.png\n" if item_file_ok else items
        )
        dataset = loads_or_names([path, events], lambda: load_tabular(events, path))
    if item_file_ok:
        assert isinstance(dataset, Dataset)
        assert not dataset.catalog.has_image.any()  # random bytes are not an image: a missing modality
        assert dataset.notes["unreadable_images"] == [10, 11]


@settings(max_examples=30, deadline=None)
@given(
    images=st.dictionaries(st.integers(1, 3), st.binary(max_size=100), min_size=1),
    suffix=st.sampled_from([".jpg", ".png", ".webp"]),
)
def test_enrichment_skips_files_that_are_not_images(images: dict[int, bytes], suffix: str) -> None:
    catalog = make_catalog([1, 2, 3, 4], ["A", "B", "C", "D"], ["a", "b", "c", "d"], [None] * 4)
    with tempfile.TemporaryDirectory() as folder:
        for item, raw in images.items():
            (Path(folder) / f"{item}{suffix}").write_bytes(raw)
        Image.new("RGB", (4, 4), "red").save(Path(folder) / "4.png")
        enriched, notes = enrich_catalog(catalog, None, "overview", Path(folder), None)
    assert notes["unreadable_images"] == sorted(images)
    assert enriched.has_image.tolist() == [False, False, False, True]
