from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmfedrec.data import cache
from mmfedrec.data.enrich import enrich_catalog
from mmfedrec.data.splits import leave_one_out
from mmfedrec.data.tabular import load_tabular
from mmfedrec.errors import DataError, MmfedrecError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_pair_with_aliases_relative_images_and_default_rating(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), "red").save(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    events = write(tmp_path / "events.csv", "user,item,timestamp\n7,10,5\n7,11,6\n8,10,1\n")
    items = write(
        tmp_path / "items.csv",
        'item_id,title,text,image_path\n10,Ten,"A ten, with comma",img/a.png\n11,Eleven,,img/broken.png\n',
    )
    dataset = load_tabular(events, items, "csv")
    catalog = dataset.catalog.items.set_index("item_id")
    assert catalog.loc[10, "text"] == "A ten, with comma"
    assert catalog.loc[11, "text"] == "Eleven"  # an empty text falls back to the title
    assert catalog.loc[10, "image_path"] == str((tmp_path / "img" / "a.png").resolve())
    assert pd.isna(catalog.loc[11, "image_path"])
    assert dataset.notes["unreadable_images"] == [11]
    assert dataset.interactions.frame["rating"].tolist() == [1.0, 1.0, 1.0]
    assert dataset.interactions.frame["timestamp"].tolist() == [5, 6, 1]


def test_parquet_without_timestamps_or_items_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pd.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 4, 3], "rating": [4.5, 2.0, 1.0]}).to_parquet(path)
    dataset = load_tabular(path, None, "parquet")
    assert dataset.interactions.frame["timestamp"].tolist() == [0, 0, 0]
    assert "random leave-one-out" in dataset.notes["timestamps"]
    assert dataset.catalog.item_ids.tolist() == [3, 4]
    assert dataset.interactions.frame["rating"].tolist() == [4.5, 2.0, 1.0]


def test_errors_name_file_line_and_column(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item_id,title\n1,One\n2,Two\n")
    wrong = write(tmp_path / "wrong.csv", "person,item\n1,1\n")
    with pytest.raises(DataError, match=r"wrong\.csv:1: no column named user_id or user; found \['person', 'item'\]"):
        load_tabular(wrong, items)
    non_numeric = write(tmp_path / "nonnum.csv", "user_id,item_id,rating\n1,1,5\n2,1,4\nbob,2,high\n")
    with pytest.raises(DataError, match=r"nonnum\.csv:4: column rating: expected a number, got 'high'"):
        load_tabular(non_numeric, items)
    unknown = write(tmp_path / "unknown.csv", 'user_id,item_id,note\n1,1,"two\nlines"\n1,5,x\n1,6,x\n')
    with pytest.raises(DataError, match=r"unknown\.csv:4: item id 5 is not in .*items\.csv"):
        load_tabular(unknown, items)  # the quoted newline makes row 1 start on line 4
    bad_items = write(tmp_path / "bad_items.csv", "item_id,title\n1,One\n1.5,Half\n")
    with pytest.raises(DataError, match=r"bad_items\.csv:3: column item_id: expected an integer, got '1\.5'"):
        load_tabular(write(tmp_path / "ok.csv", "user_id,item_id\n1,1\n"), bad_items)
    (tmp_path / "latin.csv").write_bytes("user_id,item_id\n1,1\n2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv:3: cannot decode byte 0xe9 as utf-8; .*--encoding"):
        load_tabular(tmp_path / "latin.csv", items)


INTEGER_EVENTS = [  # user, item, epoch seconds; each user has 3+ events, so the split holds some out
    (1, 10, 1600000000),
    (1, 11, 1600000060),
    (1, 12, 1599955200),
    (2, 10, 1600000000),
    (2, 12, 1600003600),
    (2, 13, 1600000001),
    (3, 11, 1600000000),
    (3, 13, 1500000000),
    (3, 14, 1600000000),
]
TEXT_EVENTS = {  # the same events with text ids and the same instants as ISO-8601 (or float epoch) text
    "user": ["u1", "u1", "u1", "u2", "u2", "u2", "u3", "u3", "u3"],
    "item": ["sku-10", "sku-11", "sku-12", "sku-10", "sku-12", "sku-13", "sku-11", "sku-13", "sku-14"],
    "timestamp": [
        "2020-09-13T12:26:40Z",
        "2020-09-13 12:27:40",
        "2020-09-13",
        "2020-09-13T14:26:40+02:00",
        "2020-09-13T13:26:40.900Z",
        "1600000001.5",  # float epoch seconds are floored; a number amid dates is read as epoch seconds
        "2020-09-13T12:26:40",
        "2017-07-14T02:40:00Z",
        "2020-09-13T12:26:40Z",
    ],
}


def test_text_ids_and_iso_dates_load_like_their_integer_twin(tmp_path: Path) -> None:
    write(tmp_path / "int.csv", "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in INTEGER_EVENTS))
    write(tmp_path / "int_items.csv", "item_id,title\n" + "".join(f"{i},Item {i}\n" for i in range(14, 9, -1)))
    pd.DataFrame(TEXT_EVENTS).to_csv(tmp_path / "text.csv", index=False)
    write(tmp_path / "text_items.csv", "item_id,title\n" + "".join(f"sku-{i},Item {i}\n" for i in range(14, 9, -1)))
    numbers = load_tabular(tmp_path / "int.csv", tmp_path / "int_items.csv")
    texts = load_tabular(tmp_path / "text.csv", tmp_path / "text_items.csv")

    assert numbers.interactions.frame["item_id"].tolist() == [i for _, i, _ in INTEGER_EVENTS]  # as before
    frame = texts.interactions.frame
    assert frame["timestamp"].tolist() == numbers.interactions.frame["timestamp"].tolist()
    assert frame["user_id"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # dense int64 stand-ins, in sorted order
    assert texts.catalog.item_ids.tolist() == [4, 3, 2, 1, 0]  # the items file's order, ids ranked
    assert texts.catalog.original_ids.tolist() == [f"sku-{i}" for i in range(14, 9, -1)]
    assert texts.catalog.items["title"].tolist() == numbers.catalog.items["title"].tolist()
    a, b = leave_one_out(numbers.interactions, n_negatives=1), leave_one_out(texts.interactions, n_negatives=1)
    for name in ("train_users", "train_items", "train_times", "valid_items", "test_items", "test_negatives"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert texts.original_user_ids(b.user_ids).tolist() == ["u1", "u2", "u3"]
    assert texts.catalog.select(b.item_ids).original_ids.tolist() == [f"sku-{i}" for i in range(10, 15)]
    assert numbers.original_user_ids(a.user_ids).tolist() == [1, 2, 3]  # integer ids are shown as they are
    assert numbers.catalog.select(a.item_ids).original_ids.tolist() == [10, 11, 12, 13, 14]
    assert numbers.users is None and "original_id" not in numbers.catalog.items


def test_original_ids_survive_the_cache_and_name_side_files(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4), "red").save(tmp_path / "sku-2.png")
    Image.new("RGB", (4, 4), "red").save(tmp_path / "1.png")  # the int64 stand-in of sku-2: must not match
    events = write(tmp_path / "events.csv", "user,item\nann,sku-2\nbob,10\n")
    dataset = load_tabular(events, None)
    cache.save_dataset(dataset, tmp_path / "cache")
    cached = cache.load_cached(tmp_path / "cache")
    assert cached is not None
    assert cached.catalog.original_ids.tolist() == ["10", "sku-2"]  # one text id makes the whole column text
    assert cached.original_user_ids(np.array([1, 0])).tolist() == ["bob", "ann"]
    table = write(tmp_path / "overviews.csv", "item_id,overview\nsku-2,Two.\n1,Wrong.\n")
    enriched, notes = enrich_catalog(cached.catalog, table, "overview", tmp_path, None)
    assert enriched.items["text"].fillna("-").tolist() == ["-", "item sku-2. Two."]
    assert enriched.items["image_path"].fillna("-").tolist() == ["-", str((tmp_path / "sku-2.png").resolve())]
    assert notes["images_found"] == 1


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("1600000000", 1600000000),
        ("1600000000.5", 1600000000),
        ("2020-09-13T12:26:40Z", 1600000000),
        ("2020-09-13 12:26:40", 1600000000),  # no zone: UTC
        ("2020-09-13", 1599955200),
        ("1969-12-31T23:59:59.5Z", -1),  # fractions are floored, also before 1970
    ],
)
def test_timestamp_formats(tmp_path: Path, written: str, seconds: int) -> None:
    events = write(tmp_path / "events.csv", f"user,item,timestamp\n1,2,{written}\n")
    assert load_tabular(events, None).interactions.frame["timestamp"].tolist() == [seconds]


def test_parquet_timestamps_and_text_ids(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    times = pd.to_datetime(["2020-09-13 12:26:40", "2020-09-13 00:00:00"])
    pd.DataFrame({"user": ["a", "b"], "item": [5, 6], "timestamp": times}).to_parquet(path)
    dataset = load_tabular(path, None, "parquet")
    assert dataset.interactions.frame["timestamp"].tolist() == [1600000000, 1599955200]
    assert dataset.catalog.item_ids.tolist() == [5, 6]  # an integer column keeps its ids
    assert dataset.original_user_ids(np.array([0, 1])).tolist() == ["a", "b"]


def test_timestamps_that_are_neither_epoch_nor_iso_name_file_line_and_value(tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", "user,item,timestamp\n1,2,2020-09-13\n1,3,yesterday\n")
    expected = r"events\.csv:3: column timestamp: expected epoch seconds or an ISO-8601 date .*, got 'yesterday'$"
    with pytest.raises(DataError, match=expected):
        load_tabular(events, None)
    huge = write(tmp_path / "huge.csv", "user,item,timestamp\n1,2,1.5\n1,3,1e30\n")
    with pytest.raises(DataError, match=r"huge\.csv:3: column timestamp: .*, got '1e30'"):
        load_tabular(huge, None)
    path = tmp_path / "events.parquet"
    pd.DataFrame({"user": [1, 1], "item": [2, 3], "timestamp": ["2020-09-13", "13/09/2020"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"events\.parquet: row 1: column timestamp: .*, got '13/09/2020'"):
        load_tabular(path, None)


def test_text_id_errors_name_file_line_and_id(tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item_id,title\nsku-1,One\nsku-2,Two\n")
    blank = write(tmp_path / "blank.csv", "user,item\nu1,sku-1\n  ,sku-2\n")
    with pytest.raises(DataError, match=r"blank\.csv:3: column user: expected an id, got '  '"):
        load_tabular(blank, items)
    unknown = write(tmp_path / "unknown.csv", "user,item\nu1,sku-1\nu1,sku-9\n")
    with pytest.raises(DataError, match=r"unknown\.csv:3: item id sku-9 is not in .*items\.csv"):
        load_tabular(unknown, items)
    numbers = write(tmp_path / "numbers.csv", "user,item\nu1,1\n")  # integers do not match text ids
    with pytest.raises(DataError, match=r"numbers\.csv:2: item id 1 is not in .*items\.csv"):
        load_tabular(numbers, items)
    twice = write(tmp_path / "twice.csv", "item_id,title\nsku-1,One\n sku-1 ,Again\n")
    with pytest.raises(DataError, match=r"twice\.csv:3: item_id sku-1 appears twice"):
        load_tabular(unknown, twice)


def test_encoding_parameter_and_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_bytes("user,item\nrené,café\n".encode("latin-1"))
    (tmp_path / "items.csv").write_bytes("item_id,title\ncafé,Crème brûlée\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"events\.csv:2: cannot decode byte 0xe9 as utf-8; .*--encoding"):
        load_tabular(tmp_path / "events.csv", tmp_path / "items.csv")
    dataset = load_tabular(tmp_path / "events.csv", tmp_path / "items.csv", encoding="latin-1")
    assert dataset.original_user_ids(np.array([0])).tolist() == ["rené"]
    assert dataset.catalog.items["text"].tolist() == ["Crème brûlée"]  # no text column: the title
    (tmp_path / "bad.csv").write_bytes("user,item,rating\nrené,café,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"bad\.csv:2: column rating: expected a number, got 'x'"):
        load_tabular(tmp_path / "bad.csv", None, encoding="latin-1")  # the line is found in latin-1 too
    with pytest.raises(MmfedrecError, match=r"unknown encoding 'klingon'"):
        load_tabular(tmp_path / "events.csv", None, encoding="klingon")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("user,item\n1,2\n".encode("utf-8-sig"))  # as spreadsheet programs save "CSV UTF-8"
    assert load_tabular(bom, None).interactions.frame["user_id"].tolist() == [1]


def test_title_is_the_text_only_where_the_file_gives_one(tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", "user,item\n1,1\n1,2\n1,3\n")
    items = write(tmp_path / "items.csv", "item_id,title,text\n1,One,Own text\n2,Two,  \n3,,\n")
    catalog = load_tabular(events, items).catalog.items
    assert catalog["text"].fillna("-").tolist() == ["Own text", "Two", "-"]  # no title either: missing
    assert catalog["title"].tolist() == ["One", "Two", "item 3"]
