"""Rebuild a trained model from a run folder: config.json -> split + trainer, model.safetensors -> state.

Only safetensors is read (never pickle). The run's seed-0 split is rebuilt (from the dataset
cache when present), so user and item indices mean what they meant in training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmfedrec.config.methods import MethodSpec, method_spec
from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split
from mmfedrec.data.types import Catalog
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.local.history import user_contexts
from mmfedrec.federation.local.personal_items import PersonalItemRows
from mmfedrec.federation.models.protocol import ClientModel, RoutedModel
from mmfedrec.federation.models.scorer import client_scorer

PSEUDO_FILE = "pseudo_interactions.safetensors"  # optional: users, items (split indices), weights


class RunModel:
    """The trained recommender, frozen: scores, router weights, and one client's local adaptation."""

    def __init__(
        self,
        model: ClientModel,
        shared: dict[str, Tensor],
        private: dict[str, Tensor],
        item_rows: Tensor,
        local_lr: float,
        personal: PersonalItemRows | None = None,
        contexts: Tensor | None = None,
        content: nn.Module | None = None,
    ) -> None:
        self.model = model
        self.global_shared = {k: v.detach() for k, v in shared.items()}
        self.shared = {k: v.unsqueeze(0) for k, v in self.global_shared.items()}  # (1, ...) broadcast over clients
        self.private = {k: v.detach() for k, v in private.items()}  # (U, ...)
        self.item_rows = item_rows.detach()  # (1, I, D+1) global table, or (U, I, D+1) local-only tables
        self.local_lr = local_lr
        self.personal = personal  # each client's own fine-tuned item vectors (--personal-items runs)
        self.contexts = contexts  # (U, D) each client's latest items, for a history-aware model (--history)
        self.content = content  # the tower's ItemContent: ranks an item no client has seen; None for ID-only models

    @property
    def n_items(self) -> int:
        return int(self.item_rows.shape[1])

    @property
    def has_router(self) -> bool:
        return isinstance(self.model, RoutedModel)

    def client_private(self, user: int) -> dict[str, Tensor]:
        return {k: v[user : user + 1] for k, v in self.private.items()}  # (1, ...)

    def _tables(self, users: Tensor) -> Tensor:
        """(B|1, I, D+1) the item vectors these clients rank with, as the evaluator scores them."""
        if self.personal is not None:
            return self.personal.tables(users, self.item_rows[0])
        return self.item_rows if self.item_rows.shape[0] == 1 else self.item_rows[users]

    def _rows(self, user: int) -> Tensor:
        """(1, I, D+1) the item vectors this client ranks with."""
        return self._tables(torch.tensor([user]))

    def scores(self, user: int, private: dict[str, Tensor] | None = None) -> np.ndarray:
        """(I,) scores of every item for one user, by the evaluator's scorer (optionally with a
        replaced private state, e.g. after local adaptation)."""
        own = self.client_private(user) if private is None else private  # (1, ...)
        rows = self._rows(user)
        scorer = client_scorer(
            self.model,
            self.global_shared,
            own,
            lambda _: rows,
            self.contexts,
            position=lambda _: torch.zeros(1, dtype=torch.long),
        )
        return scorer(np.array([user]))[0]

    def scores_with_rows(self, users: np.ndarray, extra: Tensor, batch: int = 128) -> np.ndarray:
        """(B, I + E) scores of the catalogue and of `extra` (E, D+1) rows appended to every client's
        table (items no client has seen, e.g. a new one), by the evaluator's scorer, `batch` clients
        at a time."""
        extra = extra.detach()

        def rows(index: Tensor) -> Tensor:
            own = self._tables(index)  # (B|1, I, D+1)
            return torch.cat([own, extra.expand(own.shape[0], -1, -1)], dim=1)

        scorer = client_scorer(self.model, self.global_shared, self.private, rows, self.contexts)
        users = np.asarray(users, dtype=np.int64)
        return np.concatenate([scorer(users[start : start + batch]) for start in range(0, len(users), batch)])

    def _scores(self, user: int, private: dict[str, Tensor], rows: Tensor) -> Tensor:
        """(1, L) scores of `rows` for one client, with its history context when the model reads one."""
        context = None if self.contexts is None else self.contexts[user : user + 1]
        return self.model.scores(private, self.shared, rows, context)

    def expert_weights(self, user: int) -> np.ndarray | None:
        """(K,) the router's expert weights for this client; None for models without a router."""
        if not self.has_router:
            return None
        with torch.no_grad():
            return self.model.gate(self.client_private(user), self.shared)[0].numpy()

    def adapt(
        self,
        user: int,
        positives: np.ndarray,
        weights: np.ndarray,
        seen: np.ndarray,
        steps: int = 30,
        n_negatives: int = 4,
        seed: int = 0,
    ) -> dict[str, Tensor]:
        """The client's private state after local steps on weighted positives (item vectors and experts frozen).

        What a client would do in local training, restricted to what it owns, so the effect of
        pseudo-interactions on its recommendations can be shown without another federated run.

        Args:
            positives: (P,) item indices; weights (P,) their loss weights (1 real, <1 pseudo).
            seen: item indices never drawn as negatives (the user's history and pseudo-items).
        """
        private = {k: v.clone().requires_grad_() for k, v in self.client_private(user).items()}
        if len(positives) == 0:
            return {k: v.detach() for k, v in private.items()}
        generator = np.random.default_rng(seed)
        allowed = np.setdiff1d(np.arange(self.n_items), seen)
        negatives = generator.choice(allowed, size=(steps, len(positives) * n_negatives))  # (S, P*n)
        rows = self._rows(user)
        optimizer = torch.optim.Adam(list(private.values()), lr=self.local_lr)
        pos = torch.from_numpy(np.asarray(positives, dtype=np.int64))
        pos_weight = torch.from_numpy(np.asarray(weights, dtype=np.float32))
        for step in range(steps):
            items = torch.cat([pos, torch.from_numpy(negatives[step])])  # (P + P*n,)
            logits = self._scores(user, private, rows[:, items])[0]  # (P + P*n,)
            labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(items) - len(pos))])
            example_weight = torch.cat([pos_weight, pos_weight.repeat_interleave(n_negatives)])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=example_weight)
            loss = loss + self.model.auxiliary_loss(private, self.shared).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {k: v.detach() for k, v in private.items()}


@dataclass
class LoadedRun:
    """A run folder brought back to life: what it was trained on and its best seed-0 model."""

    folder: Path
    config: RunConfig
    method: MethodSpec
    split: Split
    catalog: Catalog  # rows aligned with split item indices
    model: RunModel
    summary: dict
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # saved pseudo-interactions (users, items, weights)
    features: object | None = None  # ItemFeatures when the method used content

    @property
    def name(self) -> str:
        return self.folder.name


def load_pseudo(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    path = folder / PSEUDO_FILE
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    missing = {"users", "items", "weights"} - arrays.keys()
    if missing:
        raise MmfedrecError(f"{path}: lacks arrays {sorted(missing)}")
    return arrays["users"].astype(np.int64), arrays["items"].astype(np.int64), arrays["weights"].astype(np.float32)


def load_run(folder: Path, cache_dir: Path | None = None) -> LoadedRun:
    """Rebuild the best seed-0 model of `folder` (written by `mmfedrec train`).

    Args:
        cache_dir: overrides the run's dataset cache folder (e.g. when the run moved).
    """
    from safetensors.torch import load_file

    from mmfedrec.data.registry import load_dataset
    from mmfedrec.experiment import load_features, load_run_config, run_split
    from mmfedrec.federation.engines.runner import build_trainer

    folder = Path(folder)
    config_path, model_path = folder / "config.json", folder / "model.safetensors"
    if not config_path.is_file():
        raise MmfedrecError(f"{folder} is not a run folder (no config.json); train one with `mmfedrec train`")
    if not model_path.is_file():
        raise MmfedrecError(f"{folder} has no model.safetensors (popularity runs have no model to serve)")
    config = load_run_config(folder)
    if cache_dir is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, cache_dir=Path(cache_dir)))
    method = method_spec(config.method)
    dataset = load_dataset(config.data)
    seed = config.seeds[0]
    split, _ = run_split(config, seed)  # with the protocols the run trained under
    features = None
    if method.modalities:
        features = load_features(config, dataset.catalog, progress=False)
    trainer = build_trainer(method, split, features, config, seed)
    trainer.load_state(load_file(str(model_path)))
    local_tables = getattr(trainer, "local_tables", None)
    with torch.no_grad():
        item_rows = local_tables if local_tables is not None else trainer.tower().detach().unsqueeze(0)
    personal = getattr(trainer, "personal", None)
    local_lr = config.local.lr
    contexts = user_contexts(trainer.model, split, item_rows[0], "test")  # all the client has done so far
    content = None if local_tables is not None else getattr(getattr(trainer, "tower", None), "content", None)
    model = RunModel(trainer.model, trainer.shared, trainer.private, item_rows, local_lr, personal, contexts, content)
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return LoadedRun(
        folder,
        config,
        method,
        split,
        dataset.catalog.select(split.item_ids),
        model,
        summary,
        load_pseudo(folder),
        features,
    )
