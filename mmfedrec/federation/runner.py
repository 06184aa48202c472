"""Train one method for one seed: rounds, validation after each, test only at the best round.

Model selection uses validation NDCG@10 (sampled protocol); test is evaluated once, on the
snapshot of the best validation round, never used to choose anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mmfedrec.checkpoint import load_checkpoint, save_checkpoint
from mmfedrec.data.splits import Split
from mmfedrec.encoders.features import ItemFeatures
from mmfedrec.errors import MmfedrecError, TrainingDiverged
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.central import CentralTrainer
from mmfedrec.federation.content import ItemContent
from mmfedrec.federation.item_tower import ItemTower
from mmfedrec.federation.methods import MethodSpec
from mmfedrec.federation.models import build_model
from mmfedrec.federation.popularity import popularity_scorer
from mmfedrec.federation.privacy.dp import PrivacyAccountant
from mmfedrec.federation.simulation import FederatedConfig, Simulation

SELECTION_METRICS = ("ndcg@10", "hr@10")  # sampled-protocol validation metrics a round may be chosen on


@dataclass(frozen=True)
class TrainSettings:
    rounds: int = 30
    eval_every: int = 1
    dim: int = 32  # user/item vector width
    experts: int = 0  # experts of a mixture-of-experts method; 0 = the method's own number
    history: int = 0  # recent items that condition a mixture-of-experts method's user state (0 = none)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    central_lr: float = 0.005
    central_batch_size: int = 1024
    patience: int = 0  # stop after this many evaluations without improvement (0 = never)
    select_on: str = "ndcg@10"  # validation metric (sampled protocol) that picks the round: SELECTION_METRICS
    dp_epsilon: float = 0.0  # client-level DP: the epsilon to spend over all rounds (0 = no DP)
    dp_delta: float = 1e-5
    checkpoint_every: int = 0  # write a resumable checkpoint every N rounds (0 = never)

    def __post_init__(self) -> None:
        if self.select_on not in SELECTION_METRICS:
            raise MmfedrecError(
                f"--select-on (select_on) must be one of {', '.join(SELECTION_METRICS)}, got {self.select_on!r}"
            )


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
    dropped: int = 0  # client replies that never came, over all rounds
    rejected_updates: int = 0  # uploads refused by the server (NaN/Inf)
    epsilon: float | None = None  # DP budget spent (at TrainSettings.dp_delta); None without DP
    diverged_round: int | None = None  # the round whose update was NaN/inf; training stopped there

    def to_json(self) -> dict[str, object]:
        """Everything but the model state, for a run folder (a finished seed is not trained again)."""
        return {k: v for k, v in self.__dict__.items() if k != "best_state"}


@dataclass
class Progress:
    """Where a seed's training stands; saved in checkpoints."""

    round: int = 0
    best_value: float = -float("inf")
    best_round: int = 0
    best_valid: dict[str, object] = field(default_factory=dict)
    stale: int = 0
    seconds: float = 0.0
    upload: float = 0.0
    download: float = 0.0
    dropped: int = 0
    rejected: int = 0
    diverged_round: int | None = None
    curve: list[dict[str, object]] = field(default_factory=list)


RoundCallback = Callable[[dict[str, object]], None]


def build_client_model(method: MethodSpec, settings: TrainSettings) -> object:
    """The client model of `method` at the settings' width, with `--experts` and `--history` applied."""
    n_experts = settings.experts or method.n_experts
    return build_model(method.model, settings.dim, n_experts, method.personalized_gate, settings.history)


def build_trainer(
    method: MethodSpec, split: Split, features: ItemFeatures | None, settings: TrainSettings, seed: int
) -> Simulation | CentralTrainer:
    generator = torch.Generator().manual_seed(seed)
    model = build_client_model(method, settings)
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
            negatives_avoid_heldout=settings.federated.negatives_avoid_heldout,
            lr_schedule=settings.federated.lr_schedule,
            rounds=settings.rounds,
        )
    config = replace(settings.federated, rounds=settings.rounds)  # the horizon of the lr schedule
    if not method.federate:
        config = replace(config, federate=False)
    if method.personal_items:
        config = replace(config, personal_items=True)
    if settings.dp_epsilon > 0:
        from mmfedrec.federation.privacy.dp import noise_multiplier_for

        noise = noise_multiplier_for(settings.dp_epsilon, settings.dp_delta, config.client_fraction, settings.rounds)
        config = replace(config, defense=replace(config.defense, dp_noise_multiplier=noise))
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
    checkpoint: Path | None = None,
) -> SeedOutcome:
    """Run `method` for `settings.rounds` rounds and return its validation-selected result.

    Args:
        checkpoint: where to write a checkpoint every `settings.checkpoint_every` rounds; when the
            file exists, training continues from it (its rounds are replayed to `on_round`).
    """
    if method.kind == "popularity":
        scorer = popularity_scorer(split)
        valid = evaluate(scorer, split, "valid", groups)
        test = evaluate(scorer, split, "test", groups)
        return SeedOutcome(seed, 0, valid, test, [], 0.0, 0.0, 0.0, {})
    torch.manual_seed(seed)
    trainer = build_trainer(method, split, features, settings, seed)
    trainer.pseudo = pseudo
    noise = trainer.config.defense.dp_noise_multiplier if isinstance(trainer, Simulation) else 0.0
    accountant = PrivacyAccountant() if noise > 0 else None
    progress, best_state = Progress(), trainer.state()
    if checkpoint is not None and checkpoint.exists():
        progress, best_state, accountant = _resume(trainer, checkpoint, seed, accountant)
        for entry in progress.curve:
            if on_round is not None:
                on_round(entry)
    for round_index in range(progress.round + 1, settings.rounds + 1):
        if settings.patience and progress.stale >= settings.patience:
            break
        try:
            stats = trainer.run_round(round_index)
        except TrainingDiverged as error:
            if not progress.best_valid:  # nothing evaluated yet: no result to keep
                raise TrainingDiverged(f"seed {seed}, round {round_index}: {error}") from None
            progress.diverged_round = round_index  # keep the best round evaluated before it
            break
        progress.round = round_index
        progress.seconds += stats.seconds
        progress.upload += stats.upload_bytes_per_client
        progress.download += stats.download_bytes_per_client
        progress.dropped += stats.dropped
        progress.rejected += stats.rejected
        entry: dict[str, object] = {
            "seed": seed,
            "round": round_index,
            "seconds": round(stats.seconds, 4),
            "clients": stats.clients,
            "upload_bytes_per_client": stats.upload_bytes_per_client,
            "download_bytes_per_client": stats.download_bytes_per_client,
            "dropped": progress.dropped,
            "rejected_updates": progress.rejected,
        }
        if accountant is not None:
            accountant.step(noise, trainer.config.client_fraction)
            entry["epsilon"] = accountant.epsilon(settings.dp_delta)
            entry["delta"] = settings.dp_delta
        if round_index % settings.eval_every == 0 or round_index == settings.rounds:
            started = time.perf_counter()
            valid = evaluate(trainer.scorer("valid"), split, "valid", groups)
            entry["valid"] = {"sampled": valid["sampled"], "full": valid["full"]}
            entry["eval_seconds"] = round(time.perf_counter() - started, 4)
            value = valid["sampled"][settings.select_on]
            if value > progress.best_value:
                progress.best_value, progress.best_round, progress.best_valid = value, round_index, valid
                best_state, progress.stale = trainer.state(), 0
            else:
                progress.stale += 1
        progress.curve.append(entry)
        if on_round is not None:
            on_round(entry)
        if checkpoint is not None and settings.checkpoint_every and round_index % settings.checkpoint_every == 0:
            _save(trainer, checkpoint, seed, progress, best_state, accountant)
    trainer.load_state(best_state)
    test = evaluate(trainer.scorer("test"), split, "test", groups)
    n_rounds = max(1, len(progress.curve))
    return SeedOutcome(
        seed,
        progress.best_round,
        progress.best_valid,
        test,
        progress.curve,
        progress.seconds / n_rounds,
        progress.upload / n_rounds,
        progress.download / n_rounds,
        best_state,
        dropped=progress.dropped,
        rejected_updates=progress.rejected,
        epsilon=None if accountant is None else accountant.epsilon(settings.dp_delta),
        diverged_round=progress.diverged_round,
    )


def _save(trainer, path: Path, seed: int, progress: Progress, best_state: dict, accountant) -> None:
    tensors, trainer_meta = trainer.checkpoint_state()
    tensors |= {f"best.{k}": v for k, v in best_state.items()}
    meta = {
        "seed": seed,
        "progress": progress.__dict__,
        "trainer": trainer_meta,
        "accountant": None if accountant is None else accountant.state(),
    }
    save_checkpoint(path, tensors, meta)


def _resume(trainer, path: Path, seed: int, accountant):
    tensors, meta = load_checkpoint(path)
    if meta.get("seed") != seed:
        raise MmfedrecError(f"{path}: checkpoint of seed {meta.get('seed')}, expected seed {seed}")
    trainer.restore_checkpoint_state({k: v for k, v in tensors.items() if not k.startswith("best.")}, meta["trainer"])
    best_state = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    if meta["accountant"] is not None:
        accountant = PrivacyAccountant.from_state(meta["accountant"])
    return Progress(**meta["progress"]), best_state, accountant
