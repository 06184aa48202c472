"""`build_demo(context) -> gr.Blocks`: six tabs wired to the handlers; nothing here computes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from mmfedrec.app import handlers, new_items
from mmfedrec.app.context import AppContext
from mmfedrec.app.tiles import MAX_UPLOAD_BYTES, MAX_UPLOAD_SIDE
from mmfedrec.app.training import LIMITS, LIVE_METHODS, MAX_DP_EPSILON, default_method, train_live

SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")  # no web fonts: the app makes no outside requests
MONO_FONTS = ("ui-monospace", "Consolas", "monospace")
RECOMMEND_CONCURRENCY = 4  # Recommend calls served at once; every other event runs one at a time (Gradio's default)


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))


def launch_options(context: AppContext) -> dict[str, Any]:
    """Keyword arguments of `Blocks.launch` the app needs: theme, served folders, upload limit."""
    return {
        "theme": theme(),
        "allowed_paths": context.allowed_paths(),
        "max_file_size": 4 * MAX_UPLOAD_BYTES,  # larger files are refused by our handler, with a message
        "footer_links": [],
    }


def build_demo(context: AppContext, training_cache: Path | None = None) -> gr.Blocks:
    """The app for one run. `training_cache` holds the Training tab's synthetic datasets."""
    run = context.run
    # Gradio would otherwise hash and copy every picture of every answer into its cache
    gr.set_static_paths(context.picture_folders())
    with gr.Blocks(title=f"mmfedrec · {run.name}", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# mmfedrec: federated multimodal recommendation\n"
            f"Serving run **{run.name}**: `{run.method.name}` on {run.config.data.dataset} "
            f"({run.split.n_users} users, {run.split.n_items} items)."
        )
        with gr.Tab("Recommend"):
            _recommend_tab(context)
        with gr.Tab("Search"):
            _search_tab(context)
        with gr.Tab("New items"):
            _new_items_tab(context)
        with gr.Tab("Sparse clients"):
            _sparse_tab(context)
        with gr.Tab("Training"):
            cache = training_cache if training_cache is not None else context.cache_dir
            _training_tab(cache, default_method(run.method.name))
        with gr.Tab("About the run"):
            about = handlers.about_run(context)
            gr.Markdown(about.report, elem_id="report")
            for plot in about.plots:  # at the size it was drawn: a gallery cell would stretch or crop it
                gr.Markdown(f"### {plot.title}")
                gr.Image(
                    plot.path,
                    label=plot.title,
                    show_label=False,
                    container=False,
                    width=plot.width,
                    height=plot.height,
                    interactive=False,
                    buttons=["download"],
                    elem_classes="run-plot",
                )
    return demo


def _recommend_tab(context: AppContext) -> None:
    choices = handlers.user_choices(context)
    unavailable = handlers.augmentation_available(context)
    with gr.Row():
        user = gr.Dropdown(  # a typed id that is no choice reaches the handler, which says it is unknown
            choices,
            value=choices[0][1] if choices else None,
            allow_custom_value=True,
            label="client (user id · training items)",
            elem_id="user",
        )
        k = gr.Slider(1, handlers.MAX_K, value=context.k, step=1, label="recommendations (K)")
        augment = gr.Checkbox(
            False,
            label="with augmentation (sparse clients)",
            info=unavailable or "adapt the client on its saved pseudo-interactions",
            interactive=not unavailable,
        )
        button = gr.Button("Recommend", variant="primary", elem_id="recommend-button")
    status = gr.Markdown(elem_id="recommend-status")
    with gr.Row():
        with gr.Column(scale=3):
            recommendations = gr.Gallery(
                label="top-K recommendations (training items excluded) · score",
                columns=5,
                height="auto",
                object_fit="contain",
                elem_id="recommendations",
            )
            history = gr.Gallery(
                label=f"history (latest {handlers.HISTORY_SHOWN})",
                columns=8,
                height="auto",
                object_fit="contain",
                elem_id="history",
            )
        with gr.Column(scale=1, visible=context.run.model.has_router):
            experts = gr.BarPlot(
                x="expert", y="weight", y_lim=[0, 1], label="router: expert weights of this client", elem_id="experts"
            )

    def on_recommend(user_id: str | int, k_value: float, with_augmentation: bool):
        view = handlers.recommend(context, user_id, k_value, with_augmentation)
        return view.message, view.recommendations, view.history, view.experts

    # a few at once: while one answer's pictures are checked and sent, the next can be scored (handlers are read-only)
    button.click(
        on_recommend,
        [user, k, augment],
        [status, recommendations, history, experts],
        api_name="on_recommend",
        concurrency_limit=RECOMMEND_CONCURRENCY,
    )


def _search_tab(context: AppContext) -> None:
    gr.Markdown(
        "Search the catalogue in the encoders' space: a text query is matched against item text "
        f"features, an uploaded image against item image features (≤ {MAX_UPLOAD_BYTES // 2**20} MB, "
        f"≤ {MAX_UPLOAD_SIDE} px a side). The first search loads the encoders."
    )
    with gr.Row():
        query = gr.Textbox(label="text query", placeholder="e.g. a space adventure with robots", elem_id="query")
        upload = gr.File(label="or an image", file_types=["image"], type="filepath", elem_id="upload")
        k = gr.Slider(1, handlers.MAX_K, value=context.k, step=1, label="results")
    with gr.Row():
        text_button = gr.Button("Search text", variant="primary")
        image_button = gr.Button("Search image")
    status = gr.Markdown(elem_id="search-status")
    results = gr.Gallery(label="matches · cosine similarity", columns=5, height="auto", object_fit="contain")

    def search_text(text: str, k_value: float):
        view = handlers.search_text(context, text, k_value)
        return view.message, view.results

    def search_image(path: str | None, k_value: float):
        view = handlers.search_image(context, path, k_value)
        return view.message, view.results

    # messages go to the status line, replaced each time; toasts would stack over the controls
    gr.on([text_button.click, query.submit], search_text, [query, k], [status, results], api_name="search_text")
    image_button.click(search_image, [upload, k], [status, results], api_name="search_image")


def _new_items_tab(context: AppContext) -> None:
    gr.Markdown(
        "Add an item no client has interacted with (a description, a picture or both) and see who would get it: "
        "with no ID vector yet, the run's model ranks it for every client from its fused content alone. The "
        "table lists the clients with it in their top K, the gallery its nearest catalogue items in that "
        f"content space (pictures ≤ {MAX_UPLOAD_BYTES // 2**20} MB, ≤ {MAX_UPLOAD_SIDE} px a side)."
    )
    refusal = new_items.unavailable(context)
    if refusal:
        gr.Markdown(f"*{refusal}*")
    with gr.Row():
        text = gr.Textbox(
            label="description", lines=4, placeholder="e.g. a space adventure with robots", elem_id="new-item-text"
        )
        picture = gr.Image(label="picture", type="filepath", sources=["upload"], height=240, elem_id="new-item-image")
    with gr.Row():
        k = gr.Slider(1, handlers.MAX_K, value=context.k, step=1, label="recommendations per client (K)")
        button = gr.Button("Rank the new item", variant="primary", interactive=not refusal, elem_id="new-item-button")
    status = gr.Markdown(elem_id="new-item-status")
    # full width, one under the other: half a row cut the gallery's "cosine · title" captions
    nearest = _gallery("why: nearest catalogue items · cosine of fused content", "new-item-nearest")
    clients = gr.Dataframe(label="clients with it in their top K", max_height=400, elem_id="new-item-clients")

    def on_new_item(description: str, path: str | None, k_value: float):
        view = new_items.new_item(context, description, path, k_value)
        return view.message, view.clients, view.nearest

    button.click(on_new_item, [text, picture, k], [status, clients, nearest], api_name="new_item")


def _sparse_tab(context: AppContext) -> None:
    sparse = handlers.sparse_user_ids(context)
    gr.Markdown(
        f"Clients with at most {handlers.SPARSE_MAX} training interactions: {len(sparse)} in this run. "
        "Pseudo-interactions come from the run when it saved them, else an augmenter from "
        "`mmfedrec.generators` synthesizes them now; *before* and *after* run the same local steps "
        "on the client's private state, with and without them."
    )
    if not sparse:
        gr.Markdown("*This run has no sparse clients.*")
        return
    offered = handlers.augmenters(context)
    ids = [str(u) for u in sparse]
    with gr.Row():
        user = gr.Dropdown(ids, value=ids[0], allow_custom_value=True, label="sparse client", elem_id="sparse-user")
        augmenter = gr.Radio(list(offered), value=offered[0], label="augmenter", elem_id="augmenter")
        k = gr.Slider(1, handlers.MAX_K, value=context.k, step=1, label="recommendations")
        button = gr.Button("Show", variant="primary", elem_id="sparse-button")
    status = gr.Markdown(elem_id="sparse-status")
    with gr.Row():
        history = _gallery("history · title", "sparse-history")
        pseudo = _gallery("pseudo-interactions · score", "sparse-pseudo")
    with gr.Row():
        before = _gallery("before (no augmentation) · score", "sparse-before")
        after = _gallery("after (with augmentation) · score", "sparse-after")
    with gr.Row():  # the full titles the thumbnails' captions have no room for
        client_items = gr.Dataframe(label="history and pseudo-interactions", wrap=True, elem_id="client-items")
        rankings = gr.Dataframe(label="recommendations before and after", wrap=True, elem_id="rankings")

    def on_show(user_id: str | int, name: str, k_value: float):
        view = handlers.sparse_client(context, user_id, name, k_value)
        return view.message, view.history, view.pseudo, view.before, view.after, view.client_items, view.rankings

    outputs = [status, history, pseudo, before, after, client_items, rankings]
    button.click(on_show, [user, augmenter, k], outputs, api_name="on_show")


def _gallery(label: str, elem_id: str) -> gr.Gallery:
    return gr.Gallery(label=label, columns=5, height="auto", object_fit="contain", elem_id=elem_id)


def _training_tab(cache_dir: Path | None, method_value: str) -> None:
    gr.Markdown("Start a short federated run on the embedded synthetic dataset and watch it learn, round by round.")
    with gr.Row():
        method = gr.Dropdown(list(LIVE_METHODS), value=method_value, label="method", elem_id="training-method")
        # no bounds or rounding in the fields: train_live checks the values and says what to change
        rounds = gr.Number(8, label=_range_label("rounds"), elem_id="rounds")
        users = gr.Number(200, label=_range_label("users"), elem_id="users")
        items = gr.Number(150, label=_range_label("items"), elem_id="items")
        dp_epsilon = gr.Number(0, label=f"DP budget ε (0 = off, at most {MAX_DP_EPSILON:g})", elem_id="dp-epsilon")
        button = gr.Button("Start training", variant="primary", elem_id="training-button")
    status = gr.Markdown(elem_id="training-status")
    with gr.Row():
        metrics = gr.Plot(label="validation (sampled)", format="png")
        communication = gr.Plot(label="communication per client", format="png")

    def on_train(name: str, n_rounds: float, n_users: float, n_items: float, epsilon: float) -> Iterator[tuple]:
        for update in train_live(name, n_rounds, n_users, n_items, cache_dir, dp_epsilon=epsilon):
            yield (
                update.message,
                line_figure(update.metrics, "value", "metric", "validation (sampled)"),
                line_figure(update.communication, "KB", "direction", "KB per client"),
            )

    button.click(
        on_train, [method, rounds, users, items, dp_epsilon], [status, metrics, communication], api_name="on_train"
    )


def _range_label(name: str) -> str:
    low, high = LIMITS[name]
    return f"{name} ({low}–{high})"


def line_figure(frame, y: str, color: str, y_label: str):
    """A matplotlib figure with one line per value of `color` over `round` (None when there is no data yet)."""
    if frame.empty:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in server threads

    figure = Figure(figsize=(6, 3.2), dpi=100)
    axes = figure.subplots()
    for name, part in frame.groupby(color, sort=False):
        axes.plot(part["round"], part[y], marker="o", label=str(name))
    axes.set_xlabel("round")
    axes.set_ylabel(y_label)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure
