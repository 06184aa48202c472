"""Training tab and the default run: a short federated run on the embedded synthetic dataset.

`train_live` is a generator: it yields a `TrainingUpdate` after every round, so the UI can
redraw its plots while the run goes on. Its client steps are set by the count (the median
client's events), not by `mmfedrec train`'s validation probe, which would train the live run
twice before its first curve; each update names the steps. `ensure_default_run` trains the
model the app serves when no run is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmfedrec.config.tree import DataConfig, EvalConfig, LocalConfig, PrivacyConfig, RunConfig, TrainConfig
from mmfedrec.errors import MmfedrecError

LIVE_METHODS = ("ours-id-only", "ours", "fedavg-mf", "fedncf", "pfedrec")
LIMITS = {"rounds": (1, 50), "users": (20, 3000), "items": (60, 2000)}
MAX_DP_EPSILON = 100.0  # a larger budget protects nothing; the noise would be negligible anyway


@dataclass(frozen=True)
class TrainingUpdate:
    round: int
    message: str  # Markdown
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"round": [], "value": [], "metric": []}))
    communication: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"round": [], "KB": [], "direction": []}))
    done: bool = False


def eval_negatives(n_items: int) -> int:
    """Sampled-protocol negatives for a synthetic catalogue: 99 when it is large enough, fewer for small ones."""
    return min(99, n_items // 4)


def default_method(served: str) -> str:
    """The method the Training tab starts with: the served run's, when it is one it can train live."""
    return served if served in LIVE_METHODS else LIVE_METHODS[0]


def _number(value: object) -> float:
    """`value` as a float (NaN when it is none), whatever the form or API client sent."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check(name: str, value: object) -> int:
    """A whole number within LIMITS[name]; 2.7 rounds is refused rather than silently rounded."""
    low, high = LIMITS[name]
    number = _number(value)
    if not number.is_integer() or not low <= number <= high:
        given = "" if value is None or value == "" else f", not {value}"
        raise MmfedrecError(f"{name} must be a whole number from {low} to {high}{given}")
    return int(number)


def _check_epsilon(value: object) -> float:
    epsilon = _number(0.0 if value is None or value == "" else value)
    if not 0.0 <= epsilon <= MAX_DP_EPSILON:
        raise MmfedrecError(f"the DP budget ε must be a number from 0 (off) to {MAX_DP_EPSILON:g}, not {value}")
    return epsilon


def train_live(
    method: str = "ours-id-only",
    rounds: object = 5,
    users: object = 200,
    items: object = 150,
    cache_dir: Path | None = None,
    seed: int = 0,
    dp_epsilon: object = 0.0,
) -> Iterator[TrainingUpdate]:
    """Train `method` federatedly on a synthetic dataset, yielding metrics after each round.

    Bad settings yield one update whose message says what to change (nothing is raised).

    Args:
        dp_epsilon: client-level DP budget over the run (0 = off); with DP each update says the ε spent.
    """
    try:
        if method not in LIVE_METHODS:
            raise MmfedrecError(f"method must be one of {', '.join(LIVE_METHODS)}")
        rounds, users, items = _check("rounds", rounds), _check("users", users), _check("items", items)
        dp_epsilon = _check_epsilon(dp_epsilon)
    except MmfedrecError as error:
        yield TrainingUpdate(0, f"Cannot start: {error}.", done=True)
        return
    from mmfedrec.config.methods import method_spec
    from mmfedrec.data.registry import load_dataset, prepare_split
    from mmfedrec.evaluation.protocols import evaluate
    from mmfedrec.federation.engines.runner import build_trainer
    from mmfedrec.federation.local.auto_steps import describe
    from mmfedrec.federation.privacy.dp import PrivacyAccountant

    spec = DataConfig(synthetic_users=users, synthetic_items=items, cache_dir=cache_dir)
    yield TrainingUpdate(0, f"Preparing the synthetic dataset ({users} users, {items} items)...")
    try:
        dataset = load_dataset(spec)
        split = prepare_split(spec, seed, eval_negatives(items), use_cache=cache_dir is not None)
    except MmfedrecError as error:
        yield TrainingUpdate(0, f"Cannot start: {error}.", done=True)
        return
    spec_method = method_spec(method)
    privacy = PrivacyConfig(dp_epsilon=dp_epsilon)
    local = LocalConfig(steps_probe=0)  # the count decides: see the module's docstring
    config = RunConfig(method=method, data=spec, train=TrainConfig(rounds=rounds), local=local, privacy=privacy)
    steps = describe(config, split)
    features = None
    if spec_method.modalities:
        yield TrainingUpdate(0, "Encoding item text and images (first time only)...")
        from mmfedrec.encoders.features import features_for_run

        features = features_for_run(config, dataset.catalog)
    trainer = build_trainer(spec_method, split, features, config, seed)
    accountant = PrivacyAccountant() if dp_epsilon > 0 else None
    metric_rows: list[dict] = []
    comm_rows: list[dict] = []
    upload_total = download_total = 0.0
    started = time.perf_counter()
    for round_index in range(1, rounds + 1):
        stats = trainer.run_round(round_index)
        valid = evaluate(trainer.scorer(), split, "valid")["sampled"]
        for name in ("ndcg@10", "hr@10"):
            metric_rows.append({"round": round_index, "value": float(valid[name]), "metric": f"valid {name}"})
        upload_total += stats.upload_bytes_per_client
        download_total += stats.download_bytes_per_client
        comm_rows.append({"round": round_index, "KB": stats.upload_bytes_per_client / 1024, "direction": "upload"})
        comm_rows.append({"round": round_index, "KB": stats.download_bytes_per_client / 1024, "direction": "download"})
        lines = [
            f"**{method}**, round {round_index}/{rounds} ({time.perf_counter() - started:.1f} s): "
            f"valid NDCG@10 {valid['ndcg@10']:.4f}, HR@10 {valid['hr@10']:.4f}; {stats.clients} clients.",
            f"Communication per client: {stats.upload_bytes_per_client / 1024:.1f} KB up, "
            f"{stats.download_bytes_per_client / 1024:.1f} KB down this round; "
            f"{upload_total / 1024:.1f} KB up, {download_total / 1024:.1f} KB down in total.",
            *([f"Client steps: {steps}."] if steps else []),
        ]
        if accountant is not None:
            accountant.step(trainer.defense.noise_multiplier, config.federated.client_fraction)
            lines.append(
                f"Privacy spent: ε = {accountant.epsilon(privacy.dp_delta):.3f} of {dp_epsilon:g} "
                f"(δ = {privacy.dp_delta:g}, noise multiplier {trainer.defense.noise_multiplier:.3f})."
            )
        yield TrainingUpdate(
            round_index,
            "\n\n".join(lines),
            pd.DataFrame(metric_rows),
            pd.DataFrame(comm_rows),
            done=round_index == rounds,
        )


DEFAULT_RUN = Path("runs/app-default")


def ensure_default_run(
    out: Path = DEFAULT_RUN,
    cache_dir: Path | None = Path(".cache/mmfedrec"),
    method: str = "ours-id-only",
    rounds: int = 5,
    users: int = 300,
    items: int = 200,
    retrain: bool = False,
    progress: bool = True,
) -> Path:
    """Train the embedded default into `out` unless a finished run with the same settings is there."""

    from mmfedrec.config.codec import from_dict, read_config_file
    from mmfedrec.experiment import run_experiment

    config = RunConfig(
        method=method,
        data=DataConfig(synthetic_users=users, synthetic_items=items, cache_dir=cache_dir).absolute(),
        eval=EvalConfig(eval_negatives=eval_negatives(items)),
        train=TrainConfig(rounds=rounds),
    )
    config_path, model_path = Path(out) / "config.json", Path(out) / "model.safetensors"
    if not retrain and model_path.is_file() and config_path.is_file():
        try:
            if from_dict(read_config_file(str(config_path)), str(config_path)) == config:
                return Path(out)
        except MmfedrecError:
            pass  # written by another version: train again
    run_experiment(config, Path(out), progress=progress, overwrite=True)
    return Path(out)
