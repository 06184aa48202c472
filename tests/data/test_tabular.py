from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from mmfedrec.data.tabular import load_tabular
from mmfedrec.errors import DataError


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
    assert pd.isna(catalog.loc[11, "text"])  # empty text is a missing modality
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
    non_numeric = write(tmp_path / "nonnum.csv", "user_id,item_id\n1,1\n2,1\nbob,2\n")
    with pytest.raises(DataError, match=r"nonnum\.csv:4: column user_id: expected an integer, got 'bob'"):
        load_tabular(non_numeric, items)
    unknown = write(tmp_path / "unknown.csv", 'user_id,item_id,note\n1,1,"two\nlines"\n1,5,x\n1,6,x\n')
    with pytest.raises(DataError, match=r"unknown\.csv:4: item id 5 is not in .*items\.csv"):
        load_tabular(unknown, items)  # the quoted newline makes row 1 start on line 4
    bad_items = write(tmp_path / "bad_items.csv", "item_id,title\n1,One\n1.5,Half\n")
    with pytest.raises(DataError, match=r"bad_items\.csv:3: column item_id: expected an integer, got '1\.5'"):
        load_tabular(write(tmp_path / "ok.csv", "user_id,item_id\n1,1\n"), bad_items)
    (tmp_path / "latin.csv").write_bytes("user_id,item_id\n1,1\n2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv:3: cannot decode byte 0xe9 as utf-8"):
        load_tabular(tmp_path / "latin.csv", items)
