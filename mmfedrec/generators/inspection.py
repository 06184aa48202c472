"""Inspectable synthetic data: per-client syntheses and how synthetic profiles compare to real ones.

Fidelity: item-popularity distance (Jensen-Shannon, total variation) and category coverage.
Privacy: each synthetic profile's Jaccard similarity to its own real history and to the closest
real profile of any other user; values near 1 would mean the generator copies users.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmfedrec.atomic import write_atomic
from mmfedrec.data.splits import Split
from mmfedrec.generators.augmenters.base import Augmenter
from mmfedrec.generators.policy import AugmentationPolicy, PseudoInteractions, select_pseudo

NEAR_COPY_JACCARD = 0.9  # a synthetic profile this close to a real one counts as a near copy


@dataclass(frozen=True)
class ClientSynthesis:
    """What the generator produced for one client, for display and the `synth` command."""

    user: int  # user index
    history: list[int]  # training item indices, oldest first
    top_items: list[int]  # the synthetic profile: top-n item indices by score, seen ones included
    top_scores: list[float]
    pseudo_items: list[int]  # what augmentation would add (unseen, confident, at most n_pseudo)
    pseudo_scores: list[float]


def synthesize_for_client(
    augmenter: Augmenter, split: Split, user: int, policy: AugmentationPolicy, top_n: int = 20
) -> ClientSynthesis:
    """Score every item for one client and report its synthetic profile and pseudo-items."""
    users = np.array([user])
    scores = augmenter.scores(split, users)[0]  # (I,)
    indptr, history = split.train_csr()
    top = np.argsort(-scores, kind="stable")[:top_n]
    pseudo = select_pseudo(scores[None, :], split, users, policy)
    pseudo_items = pseudo.items[np.argsort(-scores[pseudo.items], kind="stable")]
    return ClientSynthesis(
        user=int(user),
        history=history[indptr[user] : indptr[user + 1]].tolist(),
        top_items=top.tolist(),
        top_scores=scores[top].astype(float).tolist(),
        pseudo_items=pseudo_items.tolist(),
        pseudo_scores=scores[pseudo_items].astype(float).tolist(),
    )


def popularity_distance(real_items: np.ndarray, synthetic_items: np.ndarray, n_items: int) -> dict[str, float]:
    """Distance between the item distributions of real and synthetic events (items (N,) and (P,)).

    Returns Jensen-Shannon divergence (base 2, in [0, 1]) and total variation (in [0, 1]).
    """
    real = np.bincount(real_items, minlength=n_items) / max(len(real_items), 1)
    synthetic = np.bincount(synthetic_items, minlength=n_items) / max(len(synthetic_items), 1)
    middle = (real + synthetic) / 2

    def kl(p: np.ndarray, q: np.ndarray) -> float:
        support = p > 0
        return float((p[support] * np.log2(p[support] / q[support])).sum())

    return {
        "jensen_shannon": 0.5 * kl(real, middle) + 0.5 * kl(synthetic, middle),
        "total_variation": float(0.5 * np.abs(real - synthetic).sum()),
    }


def category_coverage(users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> float:
    """Mean over users of the fraction of all L categories their items (events (N,)) touch; labels (I, L)."""
    if len(users) == 0:
        return float("nan")
    user_ids, rows = np.unique(users, return_inverse=True)
    touched = np.zeros((len(user_ids), labels.shape[1]), dtype=bool)
    np.logical_or.at(touched, rows, labels[items].astype(bool))
    return float(touched.mean())


def nearest_real_jaccard(
    synthetic: np.ndarray, synthetic_users: np.ndarray, real: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jaccard similarity of each synthetic profile to its own real profile and to the closest other one.

    Args:
        synthetic: (S, I) boolean synthetic profiles (e.g. top-n items).
        synthetic_users: (S,) the user index each synthetic profile was made for.
        real: (U, I) boolean real training profiles of all users.

    Returns:
        (S,) similarity to the user's own real profile, (S,) maximum over every other user.
    """
    synthetic_f, real_f = synthetic.astype(np.float64), real.astype(np.float64)
    intersection = synthetic_f @ real_f.T  # (S, U)
    union = synthetic_f.sum(1)[:, None] + real_f.sum(1)[None, :] - intersection
    jaccard = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    rows = np.arange(len(synthetic_users))
    own = jaccard[rows, synthetic_users]
    jaccard[rows, synthetic_users] = -np.inf
    return own, jaccard.max(axis=1)


def synth_report(
    split: Split,
    pseudo: PseudoInteractions,
    scores: np.ndarray,
    users: np.ndarray,
    top_n: int = 20,
    labels: np.ndarray | None = None,
) -> dict[str, object]:
    """Summary statistics of synthetic vs real data.

    Args:
        pseudo: the pseudo-interactions an augmenter emitted.
        scores: (S, I) the augmenter's scores for `users` (S,); its top-n items are the synthetic profiles.
        labels: (I, L) multi-hot item categories; None skips coverage.
    """
    real = np.zeros((split.n_users, split.n_items), dtype=bool)
    real[split.train_users, split.train_items] = True
    top = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]  # (S, top_n)
    synthetic = np.zeros((len(users), split.n_items), dtype=bool)
    np.put_along_axis(synthetic, top, True, axis=1)
    own, other = nearest_real_jaccard(synthetic, users, real)
    report: dict[str, object] = {
        "clients": len(users),
        "pseudo_interactions": len(pseudo),
        "popularity": popularity_distance(split.train_items, pseudo.items, split.n_items),
        "privacy": {
            "top_n": top_n,
            "own_jaccard_quantiles": _quantiles(own),
            "nearest_other_jaccard_quantiles": _quantiles(other),
            "near_copies": int((other >= NEAR_COPY_JACCARD).sum()),
        },
    }
    if labels is not None:
        augmented = np.isin(split.train_users, users)
        report["category_coverage"] = {
            "real": category_coverage(split.train_users[augmented], split.train_items[augmented], labels),
            "real_plus_pseudo": category_coverage(
                np.concatenate([split.train_users[augmented], pseudo.users]),
                np.concatenate([split.train_items[augmented], pseudo.items]),
                labels,
            ),
        }
    return report


def _quantiles(values: np.ndarray) -> dict[str, float]:
    """Min, median, p90, p99 and max, keyed by the quantile."""
    if len(values) == 0:
        return {}
    levels = (0.0, 0.5, 0.9, 0.99, 1.0)
    return {str(level): float(value) for level, value in zip(levels, np.quantile(values, levels), strict=True)}


def write_synth_report(out_dir: Path, report: dict[str, object], synthesis: ClientSynthesis | None = None) -> Path:
    """Write `synth_report.json` (with the client's synthesis when given) atomically; return its path."""
    path = Path(out_dir) / "synth_report.json"
    payload = {**report, **({"client": asdict(synthesis)} if synthesis is not None else {})}
    write_atomic(path, json.dumps(payload, indent=2), durable=True)
    return path
