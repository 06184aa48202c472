"""Train one method for one seed: rounds, validation after each, test only at the best round.

Model selection uses validation NDCG@10 (sampled protocol); test is evaluated once, on the
snapshot of the best validation round, never used to choose anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mmfedrec.data.splits import Split
from mmfedrec.encoders.features import ItemFeatures
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.central import CentralTrainer
from mmfedrec.federation.content import ItemContent
from mmfedrec.federation.item_tower import ItemTower
from mmfedrec.federation.methods import MethodSpec
from mmfedrec.federation.models import build_model
from mmfedrec.federation.popularity import popularity_scorer
from mmfedrec.federation.simulation import FederatedConfig, Simulation

SELECTION_METRIC = ("sampled", "ndcg@10")


@dataclass(frozen=True)
class TrainSettings:
    rounds: int = 30
    eval_every: int = 1
    dim: int = 32  # user/item vector width
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    central_lr: float = 0.005
    central_batch_size: int = 1024
    patience: int = 0  # stop after this many evaluations without improvement (0 = never)


@dataclass
class SeedOutcome:
    seed: int
    best_round: int
    valid: dict[str, object]
    test: dict[str, object]
    curve: list[dict[str, object]]  # one entry per round
    sec_per_round: float
    upload_bytes_per_client_round: float
    download_bytes_per_client_round: float
    best_state: dict[str, torch.Tensor]


RoundCallback = Callable[[dict[str, object]], None]


def build_trainer(
    method: MethodSpec, split: Split, features: ItemFeatures | None, settings: TrainSettings, seed: int
) -> Simulation | CentralTrainer:
    generator = torch.Generator().manual_seed(seed)
    model = build_model(method.model, settings.dim, method.n_experts, method.personalized_gate)
    content = None
    if method.modalities:
        if features is None:
            raise ValueError(f"method {method.name} needs item features")
        torch.manual_seed(seed)  # fusion init
        content = ItemContent(features, split.item_ids, method.modalities, settings.dim)
    tower = ItemTower(split.n_items, settings.dim, content, generator=generator)
    if method.kind == "central":
        return CentralTrainer(
            model,
            tower,
            split,
            seed,
            settings.federated.n_negatives,
            settings.central_lr,
            settings.central_batch_size,
            settings.federated.local.loss,
        )
    config = settings.federated
    if not method.federate:
        config = FederatedConfig(**{**config.__dict__, "federate": False})
    return Simulation(model, tower, split, config, seed)


def train_seed(
    method: MethodSpec,
    split: Split,
    features: ItemFeatures | None,
    settings: TrainSettings,
    seed: int,
    groups: dict[str, np.ndarray] | None = None,
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    on_round: RoundCallback | None = None,
) -> SeedOutcome:
    """Run `method` for `settings.rounds` rounds and return its validation-selected result."""
    if method.kind == "popularity":
        scorer = popularity_scorer(split)
        valid = evaluate(scorer, split, "valid", groups)
        test = evaluate(scorer, split, "test", groups)
        return SeedOutcome(seed, 0, valid, test, [], 0.0, 0.0, 0.0, {})
    torch.manual_seed(seed)
    trainer = build_trainer(method, split, features, settings, seed)
    trainer.pseudo = pseudo
    best_value, best_round, best_valid, best_state = -np.inf, 0, {}, trainer.state()
    curve: list[dict[str, object]] = []
    seconds, upload, download, stale = 0.0, 0.0, 0.0, 0
    for round_index in range(1, settings.rounds + 1):
        stats = trainer.run_round(round_index)
        seconds += stats.seconds
        upload += stats.upload_bytes_per_client
        download += stats.download_bytes_per_client
        entry: dict[str, object] = {
            "seed": seed,
            "round": round_index,
            "seconds": round(stats.seconds, 4),
            "clients": stats.clients,
            "upload_bytes_per_client": stats.upload_bytes_per_client,
            "download_bytes_per_client": stats.download_bytes_per_client,
        }
        if round_index % settings.eval_every == 0 or round_index == settings.rounds:
            started = time.perf_counter()
            valid = evaluate(trainer.scorer(), split, "valid", groups)
            entry["valid"] = {"sampled": valid["sampled"], "full": valid["full"]}
            entry["eval_seconds"] = round(time.perf_counter() - started, 4)
            value = valid[SELECTION_METRIC[0]][SELECTION_METRIC[1]]
            if value > best_value:
                best_value, best_round, best_valid, best_state, stale = value, round_index, valid, trainer.state(), 0
            else:
                stale += 1
        curve.append(entry)
        if on_round is not None:
            on_round(entry)
        if settings.patience and stale >= settings.patience:
            break
    trainer.load_state(best_state)
    test = evaluate(trainer.scorer(), split, "test", groups)
    n_rounds = len(curve)
    return SeedOutcome(
        seed,
        best_round,
        best_valid,
        test,
        curve,
        seconds / n_rounds,
        upload / n_rounds,
        download / n_rounds,
        best_state,
    )
