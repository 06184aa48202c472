"""The app's handlers: plain, typed functions of an `AppContext` that the UI wires and tests call.

Each returns a small dataclass of display values (gallery lists, data frames, Markdown), never
raises for bad user input, and says what went wrong in `message` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmfedrec.app.context import AppContext
from mmfedrec.errors import MmfedrecError

if TYPE_CHECKING:
    from torch import Tensor

Gallery = list[tuple[str, str]]  # (image path, caption)
MAX_K = 50
HISTORY_SHOWN = 24  # most recent training items shown per user
SPARSE_MAX = 5  # a client with at most this many training interactions is sparse (AugmentationPolicy default)
AUGMENTERS = ("item-knn", "popularity")  # offered for every run; "diffusion" too where the run saved a denoiser
DENOISER_FOLDER = "denoiser"  # <run>/denoiser: the diffusion augmenter's denoiser, saved by training
CAPTION_CHARS = 14  # what a thumbnail of the Sparse clients tab shows uncut; full titles go to its tables


def _top_k(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """(k,) item indices of the best scores, best first, never an excluded item."""
    masked = np.array(scores, dtype=np.float64)
    masked[exclude] = -np.inf
    k = min(k, int(np.isfinite(masked).sum()))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-masked, k - 1)[:k]
    return top[np.argsort(-masked[top], kind="stable")]


def _clamp_k(k: object, default: int) -> int:
    try:
        value = int(float(k))  # gr.Number / gr.Slider send floats
    except (TypeError, ValueError):
        return default
    return max(1, min(MAX_K, value))


def _scored(context: AppContext, items: np.ndarray, scores: np.ndarray) -> Gallery:
    return context.tiles_for(items, [f"{scores[i]:.3f} · {context.titles[i]}" for i in items])


def user_choices(context: AppContext) -> list[tuple[str, str]]:
    """Dropdown choices: (label, raw user id as text) for every user, with their number of training items.

    The value is text so the API documents and accepts what a user types (handlers also take ints).
    """
    counts = context.run.split.train_counts()
    return [(f"{int(u)} · {int(c)} items", str(int(u))) for u, c in zip(context.user_ids, counts)]


def sparse_user_ids(context: AppContext, sparse_max: int = SPARSE_MAX) -> list[int]:
    """Raw ids of clients with at most `sparse_max` training interactions (at least one)."""
    counts = context.run.split.train_counts()
    return [int(u) for u, c in zip(context.user_ids, counts) if 0 < c <= sparse_max]


# --- Recommend ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendView:
    message: str  # Markdown status line
    history: Gallery = field(default_factory=list)
    recommendations: Gallery = field(default_factory=list)
    recommended_items: list[int] = field(default_factory=list)  # raw item ids, best first
    scores: list[float] = field(default_factory=list)
    experts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"expert": [], "weight": []}))


def augmentation_available(context: AppContext) -> str:
    """Empty when the run saved pseudo-interactions; else why the toggle does nothing."""
    if context.run.pseudo is not None:
        return ""
    return (
        "Augmentation is not available for this run: it was trained without saved pseudo-interactions. "
        "The *Sparse clients* tab synthesizes them on the fly."
    )


def expert_frame(context: AppContext, user: int) -> pd.DataFrame:
    weights = context.run.model.expert_weights(user)
    if weights is None:
        return pd.DataFrame({"expert": [], "weight": []})
    return pd.DataFrame({"expert": [f"expert {k}" for k in range(len(weights))], "weight": weights.astype(float)})


def _augmented_state(
    context: AppContext, user: int, history: np.ndarray, items: np.ndarray, weights: np.ndarray
) -> dict[str, Tensor]:
    """The client's private state adapted on its history and saved pseudo-interactions.

    Both are fixed for the run and the local steps are seeded, so it is computed once per user.
    """
    private = context._augmented.get(user)
    if private is None:
        positives = np.concatenate([history, items])
        loss_weights = np.concatenate([np.ones(len(history), np.float32), weights])
        private = context.run.model.adapt(user, positives, loss_weights, positives)
        context._augmented[user] = private
    return private


def recommend(context: AppContext, user_id: object, k: object = 10, with_augmentation: bool = False) -> RecommendView:
    """A client's history and its top-k unseen items with scores, plus its router's expert weights.

    Args:
        user_id: the raw user id (int, or text from a textbox/dropdown).
        with_augmentation: adapt the client's private state on its saved pseudo-interactions first.
    """
    user = context.user_index(user_id)
    if user is None:
        shown = str(user_id).strip() if user_id not in (None, "") else "(none)"
        return RecommendView(f"Unknown user **{shown}**. Pick one of the {len(context.user_ids)} users in the list.")
    k = _clamp_k(k, context.k)
    history = context.history(user)
    notes = [f"User **{int(context.user_ids[user])}**: {len(history)} training interactions."]
    private = None
    if with_augmentation:
        unavailable = augmentation_available(context)
        if unavailable:
            notes.append(unavailable)
        else:
            users, items, weights = context.run.pseudo
            mine = users == user
            if not mine.any():
                notes.append("No pseudo-interactions for this client (only sparse clients are augmented).")
            else:
                private = _augmented_state(context, user, history, items[mine], weights[mine])
                notes.append(f"With augmentation: {int(mine.sum())} pseudo-interactions joined local training.")
    scores = context.run.model.scores(user, private)
    top = _top_k(scores, history, k)
    recent = history[::-1][:HISTORY_SHOWN]
    model = context.run.model
    if not model.has_router:
        notes.append(f"The {context.run.method.name} model has no router: no expert weights to show.")
    return RecommendView(
        message=" ".join(notes),
        history=context.tiles_for(recent),
        recommendations=_scored(context, top, scores),
        recommended_items=[int(context.run.split.item_ids[i]) for i in top],
        scores=[float(scores[i]) for i in top],
        experts=expert_frame(context, user),
    )


# --- Search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchView:
    message: str
    results: Gallery = field(default_factory=list)
    result_items: list[int] = field(default_factory=list)  # raw item ids, best first


def _search_results(context: AppContext, similarity: np.ndarray, present: np.ndarray, k: int, what: str) -> SearchView:
    top = _top_k(similarity, np.flatnonzero(~present), k)
    if len(top) == 0:
        return SearchView(f"No item has {what} features to match against.")
    return SearchView(
        f"Top {len(top)} items by cosine similarity of {what} features.",
        _scored(context, top, similarity),
        [int(context.run.split.item_ids[i]) for i in top],
    )


def search_text(context: AppContext, query: str | None, k: object = 10) -> SearchView:
    """Items whose text features are closest to the embedded query."""
    query = (query or "").strip()
    if not query:
        return SearchView("Type a few words to search, e.g. *a space adventure with robots*.")
    if len(query) > 500:
        return SearchView(f"That query is {len(query)} characters long; please keep it under 500.")
    from mmfedrec.app.search import text_similarities

    try:
        similarity, present = text_similarities(context, query)
    except MmfedrecError as error:
        return SearchView(f"Text search is not available: {error}.")
    return _search_results(context, similarity, present, _clamp_k(k, context.k), "text")


def search_image(context: AppContext, path: str | None, k: object = 10) -> SearchView:
    """Items whose image features are closest to the uploaded picture (validated first)."""
    from mmfedrec.app.search import image_similarities, image_tower_note
    from mmfedrec.app.tiles import check_upload

    check = check_upload(path)
    if not check.ok:
        return SearchView(check.message)
    try:
        similarity, present = image_similarities(context, path)
    except MmfedrecError as error:
        return SearchView(f"Image search is not available: {error}.")
    view = _search_results(context, similarity, present, _clamp_k(k, context.k), "image")
    return SearchView(view.message + image_tower_note(context), view.results, view.result_items)


# --- Sparse clients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SparseView:
    message: str
    history: Gallery = field(default_factory=list)  # short captions: thumbnails are narrow
    pseudo: Gallery = field(default_factory=list)
    before: Gallery = field(default_factory=list)
    after: Gallery = field(default_factory=list)
    pseudo_items: list[int] = field(default_factory=list)  # raw item ids
    before_items: list[int] = field(default_factory=list)
    after_items: list[int] = field(default_factory=list)
    client_items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["kind", "item", "title", "score"]))
    rankings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["rank", "before", "after"]))


def augmenters(context: AppContext) -> tuple[str, ...]:
    """The augmenters the Sparse clients tab offers: diffusion only where the run saved its denoiser."""
    if (context.run.folder / DENOISER_FOLDER / "config.json").is_file():
        return (*AUGMENTERS, "diffusion")
    return AUGMENTERS


def _short(text: str) -> str:
    return text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1] + "…"


def _augmenter(context: AppContext, name: str):
    """The named augmenter for this run, built once (the denoiser and item features load once)."""
    augmenter = context._augmenters.get(name)
    if augmenter is None:
        augmenter = _build_augmenter(context, name)
        context._augmenters[name] = augmenter
    return augmenter


def _build_augmenter(context: AppContext, name: str):
    from mmfedrec.generators.augmenters import augmenter_from_name

    if name == "diffusion":
        from mmfedrec.experiment import diffusion_augmenter

        return diffusion_augmenter(
            context.run.folder, context.run.split, context.run.config.augment, context.run.features
        )
    embeddings = None
    features = context.run.features
    if name == "item-knn" and features is not None:
        from mmfedrec.app.search import item_features

        features, position = item_features(context)
        parts = [a[position] for a in (features.text, features.image) if a is not None]
        embeddings = np.concatenate(parts, axis=1) if parts else None
    return augmenter_from_name(name, embeddings)


def _pseudo_for(context: AppContext, user: int, augmenter: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(items, weights, scores, source) of the client's pseudo-interactions: saved ones, else synthesized now."""
    if context.run.pseudo is not None:
        users, items, weights = context.run.pseudo
        mine = users == user
        if mine.any():
            return items[mine], weights[mine], weights[mine], "saved with the run"
    from mmfedrec.generators.inspection import synthesize_for_client
    from mmfedrec.generators.policy import AugmentationPolicy

    policy = AugmentationPolicy(sparse_max=SPARSE_MAX)
    synthesis = synthesize_for_client(_augmenter(context, augmenter), context.run.split, user, policy)
    items = np.asarray(synthesis.pseudo_items, dtype=np.int64)
    weights = np.full(len(items), policy.weight, dtype=np.float32)
    return items, weights, np.asarray(synthesis.pseudo_scores), f"synthesized now by the {augmenter} augmenter"


def _rank(scores: np.ndarray, item: int, exclude: np.ndarray) -> int:
    """1-based rank of `item` among all non-excluded items."""
    masked = np.array(scores, dtype=np.float64)
    masked[exclude] = -np.inf
    return int((masked > masked[item]).sum()) + 1


def sparse_client(context: AppContext, user_id: object, augmenter: str = "item-knn", k: object = 10) -> SparseView:
    """A sparse client's pseudo-interactions and its recommendations before and after using them.

    Before and after both run the same local steps on the client's private state (seeded); the
    only difference is whether the pseudo-interactions join its history, so the change is theirs.
    """
    user = context.user_index(user_id)
    if user is None:
        return SparseView(f"Unknown user **{user_id}**. Pick a sparse client from the list.")
    history = context.history(user)
    if not 0 < len(history) <= SPARSE_MAX:
        return SparseView(
            f"User **{user_id}** has {len(history)} training interactions; sparse clients have 1 to {SPARSE_MAX}."
        )
    offered = augmenters(context)
    if augmenter not in offered:
        return SparseView(f"Unknown augmenter {augmenter!r}; choose one of {', '.join(offered)}.")
    k = _clamp_k(k, context.k)
    try:
        items, weights, pseudo_scores, source = _pseudo_for(context, user, augmenter)
    except MmfedrecError as error:
        return SparseView(f"The {augmenter} augmenter is not available for this run: {error}.")
    model = context.run.model
    before_state = model.adapt(user, history, np.ones(len(history), np.float32), history)
    positives = np.concatenate([history, items])
    loss_weights = np.concatenate([np.ones(len(history), np.float32), weights])
    after_state = model.adapt(user, positives, loss_weights, positives)
    before_scores, after_scores = model.scores(user, before_state), model.scores(user, after_state)
    before, after = _top_k(before_scores, history, k), _top_k(after_scores, history, k)
    message = [f"User **{user_id}**: {len(history)} training interactions; {len(items)} pseudo-interactions {source}."]
    if len(items) == 0:
        message.append("The augmenter proposed nothing confident enough, so the lists match.")
    held_out = int(context.run.split.test_items[user])
    if held_out >= 0:
        title = context.titles[held_out]
        message.append(
            f"Held-out test item *{title}*: rank {_rank(before_scores, held_out, history)} before, "
            f"{_rank(after_scores, held_out, history)} after (of {model.n_items - len(history)})."
        )
    ids, titles = context.run.split.item_ids, context.titles
    recent = history[::-1]
    client_items = pd.DataFrame(
        {
            "kind": ["history"] * len(recent) + ["pseudo"] * len(items),
            "item": [int(ids[i]) for i in (*recent, *items)],
            "title": [titles[i] for i in (*recent, *items)],
            "score": [""] * len(recent) + [f"{s:.3f}" for s in pseudo_scores],
        }
    )
    rankings = pd.DataFrame(
        {
            "rank": np.arange(1, len(before) + 1),
            "before": [f"{titles[i]} ({before_scores[i]:.3f})" for i in before],
            "after": [f"{titles[i]} ({after_scores[i]:.3f})" for i in after],
        }
    )
    return SparseView(
        message=" ".join(message),
        history=context.tiles_for(recent, [_short(titles[i]) for i in recent]),
        pseudo=context.tiles_for(items, [f"{s:.2f}" for s in pseudo_scores]),
        before=context.tiles_for(before, [f"{before_scores[i]:.2f}" for i in before]),
        after=context.tiles_for(after, [f"{after_scores[i]:.2f}" for i in after]),
        pseudo_items=[int(ids[i]) for i in items],
        before_items=[int(ids[i]) for i in before],
        after_items=[int(ids[i]) for i in after],
        client_items=client_items,
        rankings=rankings,
    )


# --- About the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plot:
    """A PNG of the run folder and its size in pixels, so the page shows it as drawn, neither blown up nor cut."""

    path: str
    title: str
    width: int
    height: int


@dataclass(frozen=True)
class AboutView:
    report: str  # Markdown
    plots: list[Plot]


_IMAGE_LINE = re.compile(r"^\s*!\[[^\]]*\]\([^)]*\)\s*$", re.MULTILINE)


def about_run(context: AppContext) -> AboutView:
    """The run's report.md (its images shown separately) and its PNG plots."""
    folder = context.run.folder
    report_path = folder / "report.md"
    report = report_path.read_text() if report_path.is_file() else f"*{folder} has no report.md.*"
    report = _IMAGE_LINE.sub("", report)
    features = context.run.features
    lines = [
        report.strip(),
        "",
        "## Serving",
        f"- run folder: `{folder}`",
        f"- method: `{context.run.method.name}` ({context.run.method.summary})",
        f"- users: {context.run.split.n_users}, items: {context.run.split.n_items}",
        f"- pseudo-interactions saved: {'yes' if context.run.pseudo is not None else 'no'}",
    ]
    if features is not None:
        lines.append(f"- image tower weights: `{features.metadata.get('image_weights', 'none')}`")
    return AboutView("\n".join(lines), [_plot(path) for path in sorted(folder.glob("*.png"))])


def _plot(path: Path) -> Plot:
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return Plot(str(path), path.stem.replace("_", " "), width, height)
