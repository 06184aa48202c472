"""The New items tab's handler on a tiny trained content run (`ours`): rows, clients and nearest items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmfedrec.app import handlers
from mmfedrec.app.new_items import CLIENT_COLUMNS, fused_row, new_item


@pytest.fixture(scope="module")
def content_context(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """`ours` (text + image) trained for 2 rounds on the tiny run's synthetic set (its cache reused)."""
    from mmfedrec.app.context import load_context
    from mmfedrec.cli import main
    from tests.app.conftest import TINY

    out = tmp_path_factory.mktemp("content-run") / "run"
    argv = ["--threads", "1", "train", "--method", "ours", "--rounds", "2", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tiny_run.parent / "cache")]) == 0
    return load_context(out, work_dir=tmp_path_factory.mktemp("tiles-content"))


def _item(context) -> int:
    """An item with both a text and a picture."""
    return next(i for i in range(len(context.titles)) if context.has_image(i))


def _text(context, item: int) -> str:
    return str(context.run.catalog.items["text"].iloc[item])


def test_a_new_item_s_row_is_what_the_fusion_makes_of_its_content(content_context) -> None:
    from mmfedrec.app.search import encode_image, encode_text

    content = content_context.run.model.content
    with torch.no_grad():
        catalogue = content()  # (I, D+1)
    item = _item(content_context)
    same = fused_row(content, content.text[item].numpy(), content.image[item].numpy())
    torch.testing.assert_close(same[0], catalogue[item])  # as the tower forms a catalogue item's row

    text, picture = _text(content_context, item), content_context.image(item)
    view = new_item(content_context, text, picture, k=5)
    text_vector = torch.from_numpy(encode_text(content_context, text))[None]
    image_vector = torch.from_numpy(encode_image(content_context, picture))[None]
    with torch.no_grad():
        fused = content.fusion(text_vector, image_vector, torch.tensor([[True, True]]))[0]
    np.testing.assert_allclose(view.row, fused.numpy(), rtol=1e-6, atol=1e-6)  # its vector and content bias
    assert "leans on the" in view.message


def test_a_copy_of_an_item_finds_that_item_nearest(content_context) -> None:
    item = _item(content_context)
    raw = int(content_context.run.split.item_ids[item])
    text = _text(content_context, item)
    both = new_item(content_context, text, content_context.image(item), k=5)
    assert both.nearest_items[0] == raw, both.message
    path, caption = both.nearest[0]
    assert Path(path).is_file() and caption.endswith(content_context.titles[item])
    assert float(caption.split(" · ")[0]) > 0.99
    text_only = new_item(content_context, text, None, k=5)
    assert raw in text_only.nearest_items and "leans on" not in text_only.message


def test_the_clients_are_those_with_it_in_their_own_top_k(content_context) -> None:
    model, split = content_context.run.model, content_context.run.split
    text = _text(content_context, _item(content_context))
    partial = []
    for k in (1, 5, 20):
        view = new_item(content_context, text, None, k=k)
        extra = torch.from_numpy(view.row)[None]
        expected = []
        for user in range(split.n_users):
            scores = model.scores_with_rows(np.array([user]), extra)[0]  # (I + 1,)
            np.testing.assert_allclose(scores[:-1], model.scores(user), rtol=1e-5, atol=1e-6)
            if model.n_items in handlers._top_k(scores, content_context.history(user), k):
                expected.append(int(content_context.user_ids[user]))
        assert sorted(view.recommended_to) == sorted(expected)
        assert list(view.clients.columns) == CLIENT_COLUMNS
        assert view.clients["client"].tolist() == view.recommended_to
        assert view.clients["rank"].is_monotonic_increasing and (view.clients["rank"] <= k).all()
        assert f"Recommended to {len(expected)} of {split.n_users} clients" in view.message
        partial.append(0 < len(expected) < split.n_users)
    assert any(partial), "the test needs a k that some clients, not all, get the new item at"


def test_an_id_only_run_says_it_cannot_rank_a_new_item(context) -> None:
    view = new_item(context, "a space adventure with robots", None)
    assert "ID vectors only" in view.message and "cannot rank it" in view.message
    assert view.clients.empty and view.nearest == [] and view.row is None


def test_bad_input_is_a_message(content_context, tmp_path: Path) -> None:
    for text in (None, "", "   "):
        assert new_item(content_context, text, None).message.startswith("Describe the new item")
    fake = tmp_path / "poster.png"
    fake.write_text("this is not a picture")
    view = new_item(content_context, "a film", str(fake))
    assert "not an image" in view.message and view.row is None
    assert "characters long" in new_item(content_context, "x" * 5000, None).message
