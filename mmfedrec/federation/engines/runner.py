"""Train one method for one seed: rounds, validation after each, test only at the best round.

Model selection uses validation NDCG@10 (sampled protocol); test is evaluated once, on the
snapshot of the best validation round, never used to choose anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mmfedrec.checkpoint import load_checkpoint, save_checkpoint
from mmfedrec.config.methods import MethodSpec
from mmfedrec.config.tree import AUTO_HISTORY, ID_VECTORS_MIN_MEDIAN, RunConfig
from mmfedrec.data.splits import Split
from mmfedrec.encoders.features import ItemFeatures
from mmfedrec.errors import MmfedrecError, TrainingDiverged
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.evaluation.selection import DECAYED, BestRound
from mmfedrec.federation.engines.central import CentralTrainer
from mmfedrec.federation.engines.joining import Joining, join_buckets
from mmfedrec.federation.engines.popularity import popularity_scorer
from mmfedrec.federation.engines.simulation import Simulation
from mmfedrec.federation.local.auto_steps import STEP_REGIMES, probes_steps, with_steps
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.content import ItemContent
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.federation.models.protocol import ClientModel
from mmfedrec.federation.privacy.dp import PrivacyAccountant


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
    epsilon: float | None = None  # DP budget spent (at privacy.dp_delta); None without DP
    diverged_round: int | None = None  # the round whose update was NaN/inf; training stopped there
    stopped_round: int | None = None  # the last round trained when validation stopped improving (--patience)
    steps: dict[str, object] | None = None  # the "auto" client steps' probe: chosen, valid per regime, ...

    def decay(self, metric: str) -> float | None:
        """Validation `metric` at the last evaluated round over the best round's, when it fell below
        `DECAYED` (selection kept the peak) and no `--patience` stop ended the run; else None."""
        validated = [entry["valid"]["sampled"][metric] for entry in self.curve if "valid" in entry]
        if not validated or max(validated) <= 0 or self.stopped_round is not None:
            return None
        ratio = float(validated[-1] / max(validated))
        return ratio if ratio < DECAYED else None

    def to_json(self) -> dict[str, object]:
        """Everything but the model state, for a run folder (a finished seed is not trained again)."""
        return {k: v for k, v in self.__dict__.items() if k != "best_state"}


@dataclass
class Progress:
    """Where a seed's training stands; saved in checkpoints."""

    best: BestRound = field(default_factory=BestRound)
    round: int = 0
    seconds: float = 0.0
    upload: float = 0.0
    download: float = 0.0
    dropped: int = 0
    rejected: int = 0
    diverged_round: int | None = None
    stopped_round: int | None = None
    curve: list[dict[str, object]] = field(default_factory=list)


RoundCallback = Callable[[dict[str, object]], None]


def build_client_model(method: MethodSpec, config: RunConfig, split: Split) -> ClientModel:
    """The client model of `method` at the configured width, experts and history."""
    model = config.model
    n_experts = model.experts or method.n_experts
    history = resolved_history(method, config, split)
    return build_model(method.model, model.dim, n_experts, method.personalized_gate, history)


def resolved_history(method: MethodSpec, config: RunConfig, split: Split) -> int:
    """`model.history`, with "auto" (-1) read from the data: `AUTO_HISTORY` latest items for the
    mixture of experts where the split is in time order (asked for, and the events carry more
    than one timestamp), else none: without a time order the "next item" is tie-breaking."""
    if config.model.history >= 0:
        return config.model.history
    time_ordered = config.data.split == "time" and len(np.unique(split.train_times)) > 1
    return AUTO_HISTORY if method.model == "moe" and time_ordered else 0


def noise_multiplier(config: RunConfig) -> float:
    """The DP noise multiplier that spends `privacy.dp_epsilon` over the run (0 without DP)."""
    if config.privacy.dp_epsilon <= 0:
        return 0.0
    from mmfedrec.federation.privacy.dp import noise_multiplier_for

    privacy = config.privacy
    return noise_multiplier_for(
        privacy.dp_epsilon, privacy.dp_delta, config.federated.client_fraction, config.train.rounds
    )


def uses_id_vectors(setting: str, split: Split) -> bool:
    """Whether a content method learns per-item ID vectors (`model.id_vectors`): "auto" asks the
    data, on when the median item has at least `ID_VECTORS_MIN_MEDIAN` training interactions."""
    if setting != "auto":
        return setting == "on"
    return bool(np.median(split.item_counts()) >= ID_VECTORS_MIN_MEDIAN)


def build_tower(
    method: MethodSpec, split: Split, features: ItemFeatures | None, config: RunConfig, seed: int
) -> ItemTower:
    """The item tower of a run: item ID vectors, plus fused content for multimodal methods."""
    content = None
    if method.modalities:
        if features is None:
            raise ValueError(f"method {method.name} needs item features")
        torch.manual_seed(seed)  # fusion init
        content = ItemContent(features, split.item_ids, method.modalities, config.model.dim)
    use_id = uses_id_vectors(config.model.id_vectors, split)
    return ItemTower(split.n_items, config.model.dim, content, use_id, generator=torch.Generator().manual_seed(seed))


def build_trainer(
    method: MethodSpec, split: Split, features: ItemFeatures | None, config: RunConfig, seed: int
) -> Simulation | CentralTrainer:
    model = build_client_model(method, config, split)
    tower = build_tower(method, split, features, config, seed)
    if method.kind == "central":
        return CentralTrainer(
            model,
            tower,
            split,
            seed,
            config.federated.negatives,
            config.train.central_lr,
            config.train.central_batch_size,
            config.local.loss,
            negatives_avoid_heldout=config.federated.negatives_avoid_heldout,
            lr_schedule=config.train.lr_schedule,
            rounds=config.train.rounds,
        )
    if method.personal_items:
        config = replace(config, federated=replace(config.federated, personal_items=True))
    return Simulation(
        model, tower, split, config, seed, federate=method.federate, noise_multiplier=noise_multiplier(config)
    )


def train_seed(
    method: MethodSpec,
    split: Split,
    features: ItemFeatures | None,
    config: RunConfig,
    seed: int,
    groups: dict[str, np.ndarray] | None = None,
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    on_round: RoundCallback | None = None,
    checkpoint: Path | None = None,
    joining: Joining | None = None,
) -> SeedOutcome:
    """Run `method` for `config.train.rounds` rounds and return its validation-selected result.
    With "auto" client steps where `probes_steps` holds, both step sets are trained first for
    `local.steps_probe` rounds and the better on validation goes on (`_probe_steps`).

    Args:
        checkpoint: where to write a checkpoint every `config.train.checkpoint_every` rounds; when the
            file exists, training continues from it (its rounds are replayed to `on_round`).
        joining: new clients that join the chosen model; their test metrics become buckets "new-<n>".
    """
    if method.kind == "popularity":
        scorer = popularity_scorer(split)
        valid = evaluate(scorer, split, "valid", groups)
        test = evaluate(scorer, split, "test", groups)
        return SeedOutcome(seed, 0, valid, test, [], 0.0, 0.0, 0.0, {})
    context = _SeedContext(method, split, features, seed, groups, pseudo)
    if checkpoint is not None and checkpoint.exists():
        run = _resume(context, config, checkpoint)
        for entry in run.progress.curve:
            if on_round is not None:
                on_round({**entry, "replayed": True})  # a round the checkpoint holds, not trained again
    elif method.kind == "federated" and probes_steps(config):
        run = _probe_steps(context, config, on_round)
        if checkpoint is not None and config.train.checkpoint_every:
            _save(run, checkpoint)  # the probe's rounds, whatever their number, are not trained again
    else:
        run = _SeedRun.start(context, config)
    run.train(config.train.rounds, on_round, checkpoint)
    return run.outcome(joining)


@dataclass(frozen=True)
class _SeedContext:
    """What every trainer of one seed is built from."""

    method: MethodSpec
    split: Split
    features: ItemFeatures | None
    seed: int
    groups: dict[str, np.ndarray] | None
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None


@dataclass
class _SeedRun:
    """One trainer of a seed, with where its training stands."""

    context: _SeedContext
    config: RunConfig
    trainer: Simulation | CentralTrainer
    progress: Progress
    best_state: dict[str, torch.Tensor]
    accountant: PrivacyAccountant | None
    steps: dict[str, object] | None = None  # the "auto" client steps' probe (`_probe_steps`)

    @classmethod
    def start(cls, context: _SeedContext, config: RunConfig) -> _SeedRun:
        torch.manual_seed(context.seed)  # every trainer of a seed starts from the same draws
        trainer = build_trainer(context.method, context.split, context.features, config, context.seed)
        trainer.pseudo = context.pseudo
        noise = trainer.defense.noise_multiplier if isinstance(trainer, Simulation) else 0.0
        accountant = PrivacyAccountant() if noise > 0 else None
        return cls(context, config, trainer, Progress(BestRound(config.eval.select_on)), trainer.state(), accountant)

    def train(self, last_round: int, on_round: RoundCallback | None, checkpoint: Path | None = None) -> None:
        """Train rounds up to `last_round` (validating every `eval_every` and at `last_round`)."""
        config, split, seed, progress = self.config, self.context.split, self.context.seed, self.progress
        train, evaluation, privacy = config.train, config.eval, config.privacy
        if progress.diverged_round is not None or progress.stopped_round is not None:
            return  # a probe's run that diverged or stopped trains no further
        for round_index in range(progress.round + 1, last_round + 1):
            if evaluation.patience and progress.best.stale >= evaluation.patience:
                progress.stopped_round = progress.round  # validation stopped improving: the curve decays
                break
            try:
                stats = self.trainer.run_round(round_index)
            except TrainingDiverged as error:
                if not progress.best.valid:  # nothing evaluated yet: no result to keep
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
            if self.accountant is not None:
                noise = self.trainer.defense.noise_multiplier
                self.accountant.step(noise, config.federated.client_fraction)
                entry["epsilon"] = self.accountant.epsilon(privacy.dp_delta)
                entry["delta"] = privacy.dp_delta
            if round_index % evaluation.eval_every == 0 or round_index in (last_round, train.rounds):
                started = time.perf_counter()
                valid = evaluate(self.trainer.scorer("valid"), split, "valid", self.context.groups)
                entry["valid"] = {"sampled": valid["sampled"], "full": valid["full"]}
                entry["eval_seconds"] = round(time.perf_counter() - started, 4)
                if progress.best.offer(round_index, valid):
                    self.best_state = self.trainer.state()
            progress.curve.append(entry)
            if on_round is not None:
                on_round(entry)
            if checkpoint is not None and train.checkpoint_every and round_index % train.checkpoint_every == 0:
                _save(self, checkpoint)

    def probe_score(self) -> tuple[float, float]:
        """(the latest validation, the best one): how `_probe_steps` ranks runs; a run that
        diverged ranks below every run that did not, then by its best round before it."""
        validated = [entry["valid"] for entry in self.progress.curve if "valid" in entry]
        if not validated or self.progress.diverged_round is not None:
            return -float("inf"), self.progress.best.value
        return float(validated[-1]["sampled"][self.config.eval.select_on]), self.progress.best.value

    def outcome(self, joining: Joining | None) -> SeedOutcome:
        """Test the best round's state and report the seed."""
        context, progress, trainer = self.context, self.progress, self.trainer
        trainer.load_state(self.best_state)
        test = evaluate(trainer.scorer("test"), context.split, "test", context.groups)
        if joining is not None:
            if not isinstance(trainer, Simulation):
                raise MmfedrecError(
                    f"--new-clients joins clients to a federated model; {context.method.name} is not one"
                )
            test["buckets"] |= join_buckets(trainer, self.best_state, joining, self.config.eval.select_on)
        n_rounds = max(1, len(progress.curve))
        privacy = self.config.privacy
        return SeedOutcome(
            context.seed,
            progress.best.round,
            progress.best.valid,
            test,
            progress.curve,
            progress.seconds / n_rounds,
            progress.upload / n_rounds,
            progress.download / n_rounds,
            self.best_state,
            dropped=progress.dropped,
            rejected_updates=progress.rejected,
            epsilon=None if self.accountant is None else self.accountant.epsilon(privacy.dp_delta),
            diverged_round=progress.diverged_round,
            stopped_round=progress.stopped_round,
            steps=self.steps,
        )


def _probe_steps(context: _SeedContext, config: RunConfig, on_round: RoundCallback | None) -> _SeedRun:
    """Train with the dense and with the sparse client steps for `local.steps_probe` rounds and keep
    the one better on validation at that round.

    No statistic of the data separated every data set measured; validation at round 20 kept the
    better steps on 25 of 25 (benchmarks/README.md, "Client steps chosen on validation"). The
    kept trainer goes on as if it had run alone; its rounds reach `on_round` then. Both trainers
    are held until the choice."""
    rounds = min(config.local.steps_probe, config.train.rounds)
    runs, errors = {}, []
    for regime in STEP_REGIMES:
        run = _SeedRun.start(context, with_steps(config, regime))
        try:
            run.train(rounds, None)
        except TrainingDiverged as error:  # diverged before any validation: this regime loses
            errors.append(f"{error} with the {regime} client steps")
        runs[regime] = run
    scores = {regime: run.probe_score() for regime, run in runs.items()}
    chosen = max(STEP_REGIMES, key=scores.get)  # a tie keeps the first, dense
    if scores[chosen][1] == -float("inf"):
        raise TrainingDiverged("; ".join(errors))
    valid = {
        regime: score[0] if math.isfinite(score[0]) else None for regime, score in scores.items()
    }  # None: diverged
    kept = runs[chosen]
    dropped = [run.progress for regime, run in runs.items() if regime != chosen]
    kept.steps = {
        "chosen": chosen,
        "probe_rounds": rounds,
        "valid": valid,
        "dropped_seconds": sum(progress.seconds for progress in dropped),  # what the probe cost beyond the run
        "dropped_upload_bytes_per_client": sum(progress.upload for progress in dropped),
    }
    for entry in kept.progress.curve:
        if on_round is not None:
            on_round(entry)
    return kept


def _save(run: _SeedRun, path: Path) -> None:
    tensors, trainer_meta = run.trainer.checkpoint_state()
    tensors |= {f"best.{k}": v for k, v in run.best_state.items()}
    progress = run.progress
    meta = {
        "seed": run.context.seed,
        "progress": {**progress.__dict__, "best": progress.best.__dict__},
        "trainer": trainer_meta,
        "accountant": None if run.accountant is None else run.accountant.state(),
        "steps": run.steps,
    }
    save_checkpoint(path, tensors, meta)


def _resume(context: _SeedContext, config: RunConfig, path: Path) -> _SeedRun:
    """The seed's run as `path` saved it, with the client steps its probe chose."""
    tensors, meta = load_checkpoint(path)
    if meta.get("seed") != context.seed:
        raise MmfedrecError(f"{path}: checkpoint of seed {meta.get('seed')}, expected seed {context.seed}")
    steps = meta.get("steps")
    run = _SeedRun.start(context, config if steps is None else with_steps(config, steps["chosen"]))
    run.steps = steps
    run.trainer.restore_checkpoint_state(
        {k: v for k, v in tensors.items() if not k.startswith("best.")}, meta["trainer"]
    )
    run.best_state = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    if meta["accountant"] is not None:
        run.accountant = PrivacyAccountant.from_state(meta["accountant"])
    saved = dict(meta["progress"])
    run.progress = Progress(**saved | {"best": BestRound(**saved["best"])})
    return run
