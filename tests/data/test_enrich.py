from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from mmfedrec.data.enrich import enrich_catalog
from mmfedrec.data.types import make_catalog
from mmfedrec.errors import DataError


def catalog():
    return make_catalog([1, 2, 3], ["A (1995)", "B (1996)", "C (1997)"], ["A. old", "B. old", "C. old"], [None] * 3)


def test_text_table_dedupes_ids_and_keeps_old_text_when_empty(tmp_path: Path) -> None:
    table = tmp_path / "items.csv"
    table.write_text('movie_id,overview\n1,"First, with comma."\n1,Duplicate join.\n2,\n')
    enriched, notes = enrich_catalog(catalog(), table, "overview", None, None)
    assert enriched.items["text"].tolist() == ["A (1995). First, with comma.", "B. old", "C. old"]
    assert notes["texts_from_table"] == 1
    with pytest.raises(DataError, match=r"no column 'plot'"):
        enrich_catalog(catalog(), table, "plot", None, None)


def test_unreadable_image_is_a_missing_modality_and_flagged_images_are_dropped(tmp_path: Path) -> None:
    posters = tmp_path / "posters"
    posters.mkdir()
    Image.new("RGB", (8, 12), "blue").save(posters / "1.jpg")
    Image.new("RGB", (8, 12), "green").save(posters / "2.png")
    (posters / "3.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    (posters / "notes.txt").write_text("ignored")
    Image.new("RGB", (8, 12)).save(posters / "99.jpg")  # not in the catalogue
    enriched, notes = enrich_catalog(catalog(), None, "overview", posters, None)
    assert notes["unreadable_images"] == [3]
    assert notes["images_found"] == 2
    assert enriched.has_image.tolist() == [True, True, False]

    audit = tmp_path / "audit.csv"
    audit.write_text("movie_id,auto_flag\n1,ok\n2,title_mismatch\n3,no_tmdb_metadata\n")
    enriched, notes = enrich_catalog(catalog(), None, "overview", posters, audit)
    assert notes["flagged_images_excluded"] == 1  # item 3 had no readable image to lose
    assert enriched.has_image.tolist() == [True, False, False]
    assert pd.isna(enriched.items["image_path"].iloc[1])
