from __future__ import annotations

import pandas as pd

from mmfedrec.data.feedback import kcore, to_implicit
from mmfedrec.data.types import make_interactions


def events(rows: list[tuple[int, int, int, float]]):
    return make_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]))


def test_to_implicit_thresholds_and_keeps_latest_then_highest_then_first() -> None:
    raw = events([(1, 5, 1, 5.0), (1, 5, 3, 2.0), (1, 5, 3, 4.0), (2, 5, 0, 3.0), (2, 6, 0, 1.0), (2, 6, 0, 1.0)])
    kept = to_implicit(raw, None).frame
    assert kept.values.tolist() == [[1, 5, 3, 4.0], [2, 5, 0, 3.0], [2, 6, 0, 1.0]]
    # the threshold applies first: (1, 5, 3, 2.0) is dropped, and (1, 5, 3, 4.0) is still the latest
    assert to_implicit(raw, 3.0).frame.values.tolist() == [[1, 5, 3, 4.0], [2, 5, 0, 3.0]]
    assert to_implicit(raw, 4.5).frame.values.tolist() == [[1, 5, 1, 5.0]]


def test_kcore_iterates_until_stable() -> None:
    # 2-core: item 9 has one event; dropping it leaves user 3 with one event, which then goes too.
    raw = events([(1, 1, 0, 1), (1, 2, 0, 1), (2, 1, 0, 1), (2, 2, 0, 1), (3, 2, 0, 1), (3, 9, 0, 1)])
    core = kcore(raw, 2).frame
    assert sorted(zip(core["user_id"], core["item_id"], strict=True)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert len(kcore(raw, 0)) == len(raw)
