"""The New items tab: an item no client has interacted with, ranked from its content alone.

A new item has no ID vector, so its row in the item table is what the run's fusion makes of its
encoded text and picture: exactly the row the tower gives any item before some client holds it
as a positive. Appended to every client's table and scored by the run's own scorer, it shows
which clients would be recommended it; its nearest catalogue items in the fused space show why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mmfedrec.app.context import AppContext
from mmfedrec.app.handlers import Gallery, _clamp_k, _top_k
from mmfedrec.errors import MmfedrecError

MAX_TEXT_CHARS = 2000  # the text tower reads at most a few hundred tokens anyway
NEAREST_SHOWN = 10  # catalogue items shown as the reason
CLIENTS_SHOWN = 100  # rows of the clients table; the message counts them all
CLIENT_COLUMNS = ["client", "rank", "score", "training items"]


@dataclass(frozen=True)
class NewItemView:
    message: str  # Markdown summary, or what went wrong
    clients: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLIENT_COLUMNS))
    nearest: Gallery = field(default_factory=list)  # closest catalogue items in the fused content space
    nearest_items: list[int] = field(default_factory=list)  # raw item ids, closest first
    recommended_to: list[int] = field(default_factory=list)  # raw user ids, best rank first
    row: np.ndarray | None = None  # (D+1,) the new item's row: its vector, then its bias


def unavailable(context: AppContext) -> str:
    """Empty when the run's model can rank a new item; else why not (it ranks by ID vectors only)."""
    if context.run.model.content is not None:
        return ""
    return (
        f"The `{context.run.method.name}` model ranks items by their ID vectors only, and a new item has none: "
        "no client has interacted with it, so this run cannot rank it. A run of a content method "
        "(`ours`, `ours-no-image`, `ours-no-text`) ranks it from its description and picture."
    )


def fused_row(content: nn.Module, text: np.ndarray | None, image: np.ndarray | None) -> Tensor:
    """(1, D+1) the run's fusion of one item's text (Dt,) and image (Di,) features, either None, as
    `ItemContent` gives it: the item's vector and the bias its content predicts."""

    def batch(vector: np.ndarray | None) -> Tensor | None:
        return None if vector is None else torch.from_numpy(np.asarray(vector, dtype=np.float32))[None]

    mask = torch.tensor([[text is not None, image is not None]])
    with torch.no_grad():
        return content.fusion(batch(text), batch(image), mask)


def _cosine(rows: Tensor, vector: Tensor) -> np.ndarray:
    """(N,) cosine of each row's vector part with `vector`'s (the bias column left out)."""
    return nn.functional.cosine_similarity(rows[:, :-1], vector[None, :-1], dim=1).numpy()


def new_item(context: AppContext, text: str | None, image_path: str | None, k: object = 10) -> NewItemView:
    """Which clients would get a new item (description and/or picture) in their top-k, and its nearest items.

    Args:
        image_path: an uploaded picture; checked like the Search tab's uploads.
        k: the recommendation list length a client sees (training items excluded).
    """
    from mmfedrec.app.search import encode_image, encode_text, image_tower_note
    from mmfedrec.app.tiles import check_upload

    run, content = context.run, context.run.model.content
    refusal = unavailable(context)
    if refusal:
        return NewItemView(refusal)
    text = (text or "").strip()
    if not text and not image_path:
        return NewItemView("Describe the new item, upload its picture, or both.")
    if len(text) > MAX_TEXT_CHARS:
        return NewItemView(f"That description is {len(text)} characters long; please keep it under {MAX_TEXT_CHARS}.")
    if image_path:
        check = check_upload(image_path)
        if not check.ok:
            return NewItemView(check.message)
    reads = run.method.modalities
    notes = [
        f"The `{run.method.name}` model reads no {m}: the {m} given was left out."
        for m, given in (("text", text), ("image", image_path))
        if given and m not in reads
    ]
    use_text, use_image = bool(text) and "text" in reads, bool(image_path) and "image" in reads
    if not (use_text or use_image):
        return NewItemView(f"The `{run.method.name}` model ranks items by their {' and '.join(reads)}: give one.")
    try:
        text_vector = encode_text(context, text) if use_text else None
        image_vector = encode_image(context, image_path) if use_image else None
    except MmfedrecError as error:
        return NewItemView(f"The new item cannot be encoded: {error}.")
    row = fused_row(content, text_vector, image_vector)  # (1, D+1)
    if use_text and use_image:
        notes.append(_leaning(content, row, text_vector, image_vector))
    if use_image:
        notes.append(image_tower_note(context).strip())
    k = _clamp_k(k, context.k)
    new, rank = _client_ranks(context, row)
    chosen = np.flatnonzero(rank <= k)
    chosen = chosen[np.lexsort((-new[chosen], rank[chosen]))]  # best rank first, then highest score
    user_ids, n_users = context.user_ids, len(rank)
    shown = chosen[:CLIENTS_SHOWN]
    clients = pd.DataFrame(
        {
            "client": [int(user_ids[u]) for u in shown],
            "rank": rank[shown].astype(int),
            "score": np.round(new[shown].astype(float), 3),
            "training items": [context.train_count(int(u)) for u in shown],
        },
        columns=CLIENT_COLUMNS,
    )
    with torch.no_grad():
        similarity = _cosine(content(), row[0])  # (I,)
    nearest = _top_k(similarity, np.empty(0, dtype=np.int64), NEAREST_SHOWN)
    titles = context.titles
    lines = [
        f"**Recommended to {len(chosen)} of {n_users} clients** ({len(chosen) / n_users:.1%}): "
        f"those with the new item in their top {k} among the items they have not interacted with. "
        f"Its median rank over all clients is {int(np.median(rank))} (of {run.model.n_items + 1} items).",
    ]
    if len(chosen) > CLIENTS_SHOWN:
        lines.append(f"The table shows the first {CLIENTS_SHOWN} by rank.")
    if len(chosen) == 0:
        best = int(np.argmin(rank))
        lines.append(f"Its best rank is {int(rank[best])}, for client {int(user_ids[best])}.")
    closest = ", ".join(f"*{titles[i]}* ({similarity[i]:.2f})" for i in nearest[:3])
    lines.append(
        f"Why: no client has interacted with it, so its row is its fused content alone; its nearest "
        f"catalogue items in that space (cosine) are {closest}."
    )
    return NewItemView(
        message=" ".join([*lines, *(n for n in notes if n)]),
        clients=clients,
        nearest=context.tiles_for(nearest, [f"{similarity[i]:.2f} · {titles[i]}" for i in nearest]),
        nearest_items=[int(run.split.item_ids[i]) for i in nearest],
        recommended_to=[int(user_ids[u]) for u in chosen],
        row=row[0].numpy(),
    )


def _client_ranks(context: AppContext, row: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(U,) every client's score of the new item `row` (1, D+1) and (U,) its 1-based rank among the
    items the client has not interacted with, as the client's own scorer ranks them."""
    users = np.arange(context.run.split.n_users)
    scores = context.run.model.scores_with_rows(users, row)  # (U, I + 1): the new item last
    new = scores[:, -1]
    above = scores[:, :-1] > new[:, None]  # (U, I)
    for user in users:
        above[user, context.history(user)] = False  # a client's own training items are never recommended
    return new, above.sum(axis=1) + 1


def _leaning(content: nn.Module, row: Tensor, text: np.ndarray, image: np.ndarray) -> str:
    """Which input the fusion leaned on: the fused row's cosine to the text-only and image-only rows."""
    alone = torch.cat([fused_row(content, text, None), fused_row(content, None, image)])  # (2, D+1)
    by_text, by_image = _cosine(alone, row[0])
    leans = "text" if by_text >= by_image else "picture"
    return (
        f"The fusion leans on the **{leans}**: the row is at cosine {by_text:.2f} to the row of the text "
        f"alone and {by_image:.2f} to that of the picture alone."
    )
