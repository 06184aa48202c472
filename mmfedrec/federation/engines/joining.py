"""New clients joining a trained federation (the new-client protocol, `--new-clients`).

Held-out clients took no part in training. Once the run has chosen its best round, they join
it, in turn with their 1, 3 or 5 most recent events: each trains its own state (user vector,
personal router) for up to `join_epochs` local epochs against the frozen shared model, as a
client arriving at a deployed system would, with its pseudo-interactions when augmentation is
on. The epoch count is chosen on the joiners' validation items (epoch 0: the state a client
arrives with, ranked from its items' history context alone); test is evaluated once, there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mmfedrec.data.splits import Split
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.evaluation.selection import BestRound
from mmfedrec.federation.engines.simulation import Pseudo, Simulation
from mmfedrec.generators.sparse_clients import joining_split


@dataclass(frozen=True)
class Joining:
    """Who joins after training, on which events, and how they are augmented."""

    split: Split  # every user's events, the joiners' included (before they were held out)
    clients: np.ndarray  # (S,) the joiners
    items: tuple[int, ...]  # each joins with this many of its most recent events, in turn
    epochs: int  # local epochs at most, chosen on validation
    augment: Callable[[Split], Pseudo | None]  # pseudo-interactions for a joining split (or None)


def join_buckets(trainer: Simulation, best_state: dict[str, torch.Tensor], joining: Joining, metric: str) -> dict:
    """{"new-<n>": test metrics of the joiners with n items} for each n, each from `best_state`.

    The trainer is left at `best_state` on the split it trained on.
    """
    trained_on, pseudo = trainer.split, trainer.pseudo
    buckets = {}
    for n_items in joining.items:
        trainer.load_state(best_state)
        split = joining_split(joining.split, joining.clients, n_items)
        trainer.use_split(split)
        trainer.pseudo = joining.augment(split)
        best, best_private = BestRound(metric), _rows(trainer.private, joining.clients)
        for epoch in range(joining.epochs + 1):
            if epoch > 0:
                trainer.run_round(epoch, clients=joining.clients, update_server=False)
            if best.offer(epoch, evaluate(trainer.scorer("valid"), split, "valid")):
                best_private = _rows(trainer.private, joining.clients)
        for name, rows in best_private.items():
            trainer.private[name][joining.clients] = rows
        test = evaluate(trainer.scorer("test"), split, "test")
        buckets[f"new-{n_items}"] = {key: test[key] for key in ("sampled", "full", "users")} | {"epochs": best.round}
    trainer.load_state(best_state)
    trainer.use_split(trained_on)
    trainer.pseudo = pseudo
    return buckets


def _rows(private: dict[str, torch.Tensor], clients: np.ndarray) -> dict[str, torch.Tensor]:
    return {name: value[clients].clone() for name, value in private.items()}
