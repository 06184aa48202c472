"""`build_demo(context) -> gr.Blocks`: five tabs wired to the handlers; nothing here computes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from mmfedrec.app import handlers
from mmfedrec.app.context import AppContext
from mmfedrec.app.tiles import MAX_UPLOAD_BYTES, MAX_UPLOAD_SIDE
from mmfedrec.app.training import LIVE_METHODS, train_live

SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")  # no web fonts: the app makes no outside requests
MONO_FONTS = ("ui-monospace", "Consolas", "monospace")


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
        with gr.Tab("Sparse clients"):
            _sparse_tab(context)
        with gr.Tab("Training"):
            _training_tab(training_cache if training_cache is not None else context.cache_dir)
        with gr.Tab("About the run"):
            about = handlers.about_run(context)
            gr.Markdown(about.report, elem_id="report")
            gr.Gallery(about.plots, label="plots", columns=2, object_fit="contain", height=420)
    return demo


def _recommend_tab(context: AppContext) -> None:
    choices = handlers.user_choices(context)
    unavailable = handlers.augmentation_available(context)
    with gr.Row():
        user = gr.Dropdown(
            choices, value=choices[0][1] if choices else None, label="client (user id · training items)", elem_id="user"
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

    def on_recommend(user_id: object, k_value: float, with_augmentation: bool):
        view = handlers.recommend(context, user_id, k_value, with_augmentation)
        return view.message, view.recommendations, view.history, view.experts

    button.click(on_recommend, [user, k, augment], [status, recommendations, history, experts])


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

    def show(view: handlers.SearchView):
        if not view.results:
            gr.Warning(view.message)
        return view.message, view.results

    text_button.click(lambda q, n: show(handlers.search_text(context, q, n)), [query, k], [status, results])
    query.submit(lambda q, n: show(handlers.search_text(context, q, n)), [query, k], [status, results])
    image_button.click(lambda p, n: show(handlers.search_image(context, p, n)), [upload, k], [status, results])


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
    with gr.Row():
        user = gr.Dropdown(sparse, value=sparse[0], label="sparse client", elem_id="sparse-user")
        augmenter = gr.Radio(list(handlers.AUGMENTERS), value=handlers.AUGMENTERS[0], label="augmenter")
        k = gr.Slider(1, handlers.MAX_K, value=context.k, step=1, label="recommendations")
        button = gr.Button("Show", variant="primary")
    status = gr.Markdown()
    with gr.Row():
        history = gr.Gallery(label="history", columns=5, height="auto", object_fit="contain")
        pseudo = gr.Gallery(label="pseudo-interactions · score", columns=5, height="auto", object_fit="contain")
    with gr.Row():
        before = gr.Gallery(label="before (no augmentation)", columns=5, height="auto", object_fit="contain")
        after = gr.Gallery(label="after (with augmentation)", columns=5, height="auto", object_fit="contain")

    def on_show(user_id: object, name: str, k_value: float):
        view = handlers.sparse_client(context, user_id, name, k_value)
        return view.message, view.history, view.pseudo, view.before, view.after

    button.click(on_show, [user, augmenter, k], [status, history, pseudo, before, after])


def _training_tab(cache_dir: Path | None) -> None:
    gr.Markdown("Start a short federated run on the embedded synthetic dataset and watch it learn, round by round.")
    with gr.Row():
        method = gr.Dropdown(list(LIVE_METHODS), value=LIVE_METHODS[0], label="method")
        rounds = gr.Number(8, label="rounds", precision=0, minimum=1, maximum=50)
        users = gr.Number(200, label="users", precision=0, minimum=20, maximum=3000)
        items = gr.Number(150, label="items", precision=0, minimum=60, maximum=2000)
        button = gr.Button("Start training", variant="primary")
    status = gr.Markdown(elem_id="training-status")
    with gr.Row():
        metrics = gr.Plot(label="validation (sampled)", format="png")
        communication = gr.Plot(label="communication per client", format="png")

    def on_train(name: str, n_rounds: float, n_users: float, n_items: float) -> Iterator[tuple]:
        for update in train_live(name, n_rounds, n_users, n_items, cache_dir):
            yield (
                update.message,
                line_figure(update.metrics, "value", "metric", "validation (sampled)"),
                line_figure(update.communication, "KB", "direction", "KB per client"),
            )

    button.click(on_train, [method, rounds, users, items], [status, metrics, communication])


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
