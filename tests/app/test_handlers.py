"""Handlers of every tab on a tiny trained run, called directly (no browser, no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors.torch import load_file

from mmfedrec.app import handlers
from mmfedrec.app.tiles import MAX_UPLOAD_SIDE, check_upload


def _user_with_history(context) -> int:
    counts = context.run.split.train_counts()
    return int(context.user_ids[int(np.argmax(counts))])


def test_recommend_excludes_training_items_and_shows_the_router(context) -> None:
    user_id = _user_with_history(context)
    view = handlers.recommend(context, user_id, k=7)
    user = context.user_index(user_id)
    assert len(view.recommendations) == 7 == len(view.recommended_items)
    history_ids = set(context.run.split.item_ids[context.history(user)].tolist())
    assert history_ids and not history_ids & set(view.recommended_items)
    assert view.scores == sorted(view.scores, reverse=True)
    scores = context.run.model.scores(user)
    unseen = np.setdiff1d(np.arange(len(scores)), context.history(user))
    assert np.allclose(view.scores, np.sort(scores[unseen])[::-1][:7])
    for path, caption in view.recommendations:
        assert Path(path).is_file() and " · " in caption
    assert len(view.history) == min(len(history_ids), handlers.HISTORY_SHOWN)
    assert list(view.experts.columns) == ["expert", "weight"] and len(view.experts) == 4
    assert view.experts["weight"].sum() == pytest.approx(1.0, abs=1e-5)
    assert handlers.recommend(context, str(user_id), k=7).recommended_items == view.recommended_items  # text ids
    label = f"{user_id} · {len(history_ids)} items"  # what a user who types a dropdown label sends
    assert handlers.recommend(context, label, k=7).recommended_items == view.recommended_items


@pytest.mark.parametrize("user_id", [10**9, "not-a-user", "", None, 3.5])
def test_recommend_unknown_user_is_a_message(context, user_id: object) -> None:
    view = handlers.recommend(context, user_id)
    assert view.message.startswith("Unknown user") and view.recommendations == [] and view.experts.empty
    assert view.history == []


def test_recommend_clamps_k(context) -> None:
    user_id = _user_with_history(context)
    assert len(handlers.recommend(context, user_id, k=0).recommendations) == 1
    assert len(handlers.recommend(context, user_id, k="junk").recommendations) == context.k


def test_augmentation_toggle_without_saved_pseudo_explains(context) -> None:
    view = handlers.recommend(context, _user_with_history(context), with_augmentation=True)
    assert "not available" in view.message
    assert view.recommended_items == handlers.recommend(context, _user_with_history(context)).recommended_items


def test_augmentation_toggle_with_saved_pseudo_changes_sparse_recommendations(augmented_context) -> None:
    users, _, _ = augmented_context.run.pseudo
    user_id = int(augmented_context.user_ids[users[0]])
    plain = handlers.recommend(augmented_context, user_id)
    augmented = handlers.recommend(augmented_context, user_id, with_augmentation=True)
    assert "pseudo-interactions joined" in augmented.message
    assert augmented.scores != plain.scores
    state = augmented_context._augmented[int(users[0])]  # seeded steps on fixed data: adapted once per user
    assert handlers.recommend(augmented_context, user_id, with_augmentation=True).scores == augmented.scores
    assert augmented_context._augmented[int(users[0])] is state
    dense = _user_with_history(augmented_context)
    assert "No pseudo-interactions" in handlers.recommend(augmented_context, dense, with_augmentation=True).message


def test_items_without_image_get_a_placeholder_tile(context) -> None:
    tile = context.tiles.tile("A title with no picture")
    assert Path(tile).is_file() and context.tiles.tile("A title with no picture") == tile
    with Image.open(tile) as image:
        assert image.size == (200, 300)
    context._item_images[0] = None  # as if item 0 had no image
    try:
        assert context.tiles_for(np.array([0]))[0][0] == context.tiles.tile(context.titles[0])
    finally:
        context.__post_init__()


def test_search_text_finds_items(context) -> None:
    text = str(context.run.catalog.items["text"].iloc[3])
    view = handlers.search_text(context, text, k=5)
    assert len(view.results) == 5 and "cosine" in view.message
    assert int(context.run.split.item_ids[3]) in view.result_items  # its own text is among the closest


@pytest.mark.parametrize("query", ["", "   ", None])
def test_search_empty_query_is_a_friendly_message(context, query: str | None) -> None:
    view = handlers.search_text(context, query)
    assert view.results == [] and "Type a few words" in view.message


def test_search_image_matches_an_item_picture_to_itself(context, tmp_path: Path) -> None:
    item = next(i for i in range(len(context.titles)) if context.has_image(i))
    upload = tmp_path / "query.png"
    with Image.open(context.image(item)) as image:
        image.convert("RGB").save(upload)
    view = handlers.search_image(context, str(upload), k=3)
    assert view.result_items[0] == int(context.run.split.item_ids[item]), view.message


def test_search_image_refuses_a_non_image(context, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture")
    view = handlers.search_image(context, str(fake))
    assert view.results == [] and "not an image" in view.message
    assert "Upload an image" in handlers.search_image(context, None).message


def test_search_image_refuses_oversized_images(context, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGB", (MAX_UPLOAD_SIDE + 1, 8)).save(wide)
    view = handlers.search_image(context, str(wide))
    assert view.results == [] and "px" in view.message
    heavy = tmp_path / "heavy.bmp"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)).save(heavy)
    assert "MB" in check_upload(heavy).message and not check_upload(heavy).ok


def test_sparse_client_shows_pseudo_items_and_before_after(context) -> None:
    sparse = handlers.sparse_user_ids(context)
    assert sparse, "the tiny run needs sparse clients"
    for augmenter in handlers.AUGMENTERS:
        view = handlers.sparse_client(context, sparse[0], augmenter, k=5)
        assert "pseudo-interactions synthesized now" in view.message
        assert 0 < len(view.pseudo_items) <= 10 and len(view.pseudo) == len(view.pseudo_items)
        history = set(context.run.split.item_ids[context.history(context.user_index(sparse[0]))].tolist())
        assert not history & set(view.pseudo_items) and not history & set(view.after_items)
        assert len(view.before) == len(view.after) == 5
        assert view.before_items != view.after_items or augmenter == "popularity"


def test_sparse_client_captions_fit_and_tables_hold_the_full_titles(context) -> None:
    """Narrow thumbnails cut long captions ("0.94 · Ite…"): captions stay short, titles go to the tables."""
    user_id = handlers.sparse_user_ids(context)[0]
    view = handlers.sparse_client(context, user_id, "item-knn", k=5)
    for gallery in (view.history, view.pseudo, view.before, view.after):
        assert gallery and all(len(caption) <= handlers.CAPTION_CHARS for _, caption in gallery)
    ids = context.run.split.item_ids.tolist()
    title = {item: context.titles[ids.index(item)] for item in ids}
    items = view.client_items
    assert items["kind"].tolist() == ["history"] * len(view.history) + ["pseudo"] * len(view.pseudo_items)
    assert items["item"].tolist()[len(view.history) :] == view.pseudo_items
    assert items["title"].tolist() == [title[i] for i in items["item"]]
    assert view.rankings["rank"].tolist() == [1, 2, 3, 4, 5]
    assert [row.split(" (")[0] for row in view.rankings["before"]] == [title[i] for i in view.before_items]
    assert [row.split(" (")[0] for row in view.rankings["after"]] == [title[i] for i in view.after_items]


def test_sparse_client_offers_diffusion_where_the_run_has_a_denoiser(context, denoised_context) -> None:
    assert "diffusion" not in handlers.augmenters(context)
    assert (
        "Unknown augmenter"
        in handlers.sparse_client(context, handlers.sparse_user_ids(context)[0], "diffusion").message
    )
    assert handlers.augmenters(denoised_context) == (*handlers.AUGMENTERS, "diffusion")
    user_id = handlers.sparse_user_ids(denoised_context)[0]
    view = handlers.sparse_client(denoised_context, user_id, "diffusion", k=5)
    assert "synthesized now by the diffusion augmenter" in view.message, view.message
    assert len(view.before) == len(view.after) == 5
    assert handlers._augmenter(denoised_context, "diffusion") is handlers._augmenter(denoised_context, "diffusion")


def test_sparse_client_uses_saved_pseudo(augmented_context) -> None:
    users, items, _ = augmented_context.run.pseudo
    user_id = int(augmented_context.user_ids[users[0]])
    view = handlers.sparse_client(augmented_context, user_id)
    assert "saved with the run" in view.message
    assert set(view.pseudo_items) == set(augmented_context.run.split.item_ids[items[users == users[0]]].tolist())


def test_sparse_client_rejects_dense_unknown_and_bad_augmenter(context) -> None:
    assert "Unknown user" in handlers.sparse_client(context, "nobody").message
    dense = _user_with_history(context)
    assert "sparse clients have" in handlers.sparse_client(context, dense).message
    assert "Unknown augmenter" in handlers.sparse_client(context, handlers.sparse_user_ids(context)[0], "magic").message


def test_about_shows_report_and_plots(context) -> None:
    view = handlers.about_run(context)
    assert "ours-id-only" in view.report and "| method |" in view.report
    assert "![" not in view.report
    assert [Path(plot.path).name for plot in view.plots] == ["valid_curve.png"]
    with Image.open(view.plots[0].path) as image:
        assert (view.plots[0].width, view.plots[0].height) == image.size


def test_user_choices_cover_every_user(context) -> None:
    choices = handlers.user_choices(context)
    assert [value for _, value in choices] == [str(u) for u in context.user_ids.tolist()]
    assert isinstance(pd.DataFrame(choices), pd.DataFrame)


def _tab(demo, label: str):
    import gradio as gr

    tab = next(block for block in demo.blocks.values() if isinstance(block, gr.Tab) and block.label == label)
    found, stack = [], [tab]
    while stack:
        block = stack.pop()
        found.append(block)
        stack.extend(getattr(block, "children", []))
    return found


def test_build_demo_wires_six_tabs(context) -> None:
    import gradio as gr

    from mmfedrec.app.ui import build_demo, launch_options

    demo = build_demo(context)
    assert isinstance(demo, gr.Blocks)
    tabs = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["Recommend", "Search", "New items", "Sparse clients", "Training", "About the run"]
    api_names = [fn.api_name for fn in demo.fns.values()]
    assert sorted(api_names) == ["new_item", "on_recommend", "on_show", "on_train", "search_image", "search_text"]
    options = launch_options(context)
    assert str(context.tiles.folder.resolve()) in options["allowed_paths"]


def test_about_tab_shows_each_plot_as_an_image_at_its_own_size(context) -> None:
    """A gallery cell stretched the validation curve into a grey band with its axes cut off."""
    import gradio as gr

    from mmfedrec.app.ui import build_demo

    blocks = _tab(build_demo(context), "About the run")
    assert not any(isinstance(block, gr.Gallery) for block in blocks)
    images = [block for block in blocks if isinstance(block, gr.Image)]
    plot = handlers.about_run(context).plots[0]
    assert [(image.label, image.width, image.height) for image in images] == [(plot.title, plot.width, plot.height)]


def test_training_tab_starts_with_the_served_method(context) -> None:
    """The tab offered ours-id-only while the app served ours."""
    import dataclasses

    import gradio as gr

    from mmfedrec.app.context import AppContext
    from mmfedrec.app.ui import build_demo
    from mmfedrec.config.methods import method_spec

    def method_value(served: str) -> str:
        run = dataclasses.replace(context.run, method=method_spec(served))
        demo = build_demo(AppContext(run, context.tiles, context.cache_dir))
        blocks = _tab(demo, "Training")
        return next(b.value for b in blocks if isinstance(b, gr.Dropdown) and b.label == "method")

    assert method_value("ours") == "ours" and method_value("fedncf") == "fedncf"
    assert method_value("central-mf") == "ours-id-only"  # not trained live: the first live method


def test_a_personal_items_run_is_served_with_each_clients_own_item_vectors(tmp_path: Path) -> None:
    """The app ranks as the evaluator did: with the item vectors each client fine-tuned."""
    from mmfedrec.app.run_loader import load_run
    from mmfedrec.cli import main
    from mmfedrec.federation.engines.runner import build_trainer
    from tests.app.conftest import TINY

    out = tmp_path / "run"
    argv = ["--threads", "1", "train", "--method", "fedavg-mf", "--rounds", "2", "--personal-items", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    run = load_run(out)
    assert run.model.personal is not None and len(run.model.personal.keys) > 0
    trainer = build_trainer(run.method, run.split, None, run.config, run.config.seeds[0])
    trainer.load_state(load_file(str(out / "model.safetensors")))
    users = run.split.evaluated_users("test")[:3]
    expected = trainer.scorer()(users)
    for row, user in enumerate(users):
        np.testing.assert_allclose(run.model.scores(int(user)), expected[row], rtol=1e-6, atol=1e-6)


def test_a_history_run_is_served_with_each_clients_latest_items(tmp_path: Path) -> None:
    """The app ranks as the evaluator's test stage did: from all the client has done so far."""
    from mmfedrec.app.run_loader import load_run
    from mmfedrec.cli import main
    from mmfedrec.federation.engines.runner import build_trainer
    from tests.app.conftest import TINY

    out = tmp_path / "run"
    argv = ["--threads", "1", "train", "--method", "ours-id-only", "--rounds", "2", "--history", "3", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    run = load_run(out)
    trainer = build_trainer(run.method, run.split, None, run.config, run.config.seeds[0])
    trainer.load_state(load_file(str(out / "model.safetensors")))
    users = run.split.evaluated_users("test")[:3]
    expected, without_valid = trainer.scorer("test")(users), trainer.scorer("valid")(users)
    assert not np.allclose(expected, without_valid)
    for row, user in enumerate(users):
        np.testing.assert_allclose(run.model.scores(int(user)), expected[row], rtol=1e-6, atol=1e-6)
