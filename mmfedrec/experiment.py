"""One experiment: a method trained and evaluated on a dataset over seeds, written to runs/<name>/.

The CLI builds an `ExperimentConfig` once from its arguments; everything below takes plain,
typed values. Outputs: config.json, metrics.jsonl (one line per round, written as it runs),
summary.json, report.md, valid_curve.png and the best model of the first seed (safetensors).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfedrec.data.spec import DatasetSpec
from mmfedrec.federation.methods import method_spec
from mmfedrec.federation.runner import SeedOutcome, TrainSettings


@dataclass(frozen=True)
class FeatureConfig:
    text_model: str | None = None  # None: the packaged all-MiniLM-L6-v2
    image_preset: str | None = "tiny"  # open_clip preset of the image tower
    image_checkpoint: str | None = None  # None: a seeded random-init tower (said so in the outputs)


@dataclass(frozen=True)
class ExperimentConfig:
    method: str
    dataset: DatasetSpec
    out: Path
    seeds: tuple[int, ...] = (0,)
    eval_negatives: int = 99
    train: TrainSettings = field(default_factory=TrainSettings)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    progress: bool = True


def _log(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def load_features(config: ExperimentConfig, catalog, cache_dir: Path | None):
    """Item features for methods that use content (cached; computed on demand)."""
    from mmfedrec.encoders.features import compute_item_features

    features, hit = compute_item_features(
        catalog,
        text_model=config.features.text_model,
        image_preset=config.features.image_preset,
        image_checkpoint=config.features.image_checkpoint,
        cache_dir=cache_dir,
        progress=config.progress,
    )
    _log(
        f"item features: {'cache hit' if hit else 'computed'} ({features.metadata.get('image_weights', 'no image')} image tower)",
        config.progress,
    )
    return features


def run_experiment(config: ExperimentConfig) -> dict:
    """Train `config.method` for every seed and write the run folder; returns the summary."""
    from mmfedrec.data.registry import load_dataset, prepare_split
    from mmfedrec.evaluation.report import summarize, write_atomic, write_json, write_report
    from mmfedrec.federation.runner import train_seed

    method = method_spec(config.method)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", _config_dict(config))
    dataset = load_dataset(config.dataset)
    features = None
    if method.modalities:
        cache = None if config.dataset.cache_dir is None else Path(config.dataset.cache_dir) / "features"
        features = load_features(config, dataset.catalog, cache)
    metrics_path = out / "metrics.jsonl"
    outcomes: list[SeedOutcome] = []
    started = time.perf_counter()
    with metrics_path.open("w") as metrics_file:
        for seed in config.seeds:
            split = prepare_split(
                config.dataset, seed, config.eval_negatives, use_cache=config.dataset.cache_dir is not None
            )

            def on_round(entry: dict, seed: int = seed) -> None:
                metrics_file.write(json.dumps({"method": method.name, **entry}) + "\n")
                metrics_file.flush()
                valid = entry.get("valid")
                score = f" valid ndcg@10 {valid['sampled']['ndcg@10']:.4f}" if valid else ""
                _log(
                    f"[{method.name} seed {seed}] round {entry['round']}/{config.train.rounds}{score} ({entry['seconds']:.2f} s)",
                    config.progress,
                )

            outcome = train_seed(method, split, features, config.train, seed, on_round=on_round)
            outcomes.append(outcome)
            _log(
                f"[{method.name} seed {seed}] best round {outcome.best_round}: test ndcg@10 {outcome.test['sampled']['ndcg@10']:.4f}",
                config.progress,
            )
    summary = summarize(
        method.name, config.dataset.name, outcomes, {"total_seconds": round(time.perf_counter() - started, 2)}
    )
    if features is not None:
        summary["features"] = dict(features.metadata)
    write_json(out / "summary.json", summary)
    write_report(
        out, [summary], {method.name: [e for o in outcomes for e in o.curve]}, f"{method.name} on {config.dataset.name}"
    )
    if outcomes[0].best_state:
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in outcomes[0].best_state.items()}
        write_atomic(
            out / "model.safetensors", save(state, metadata={"method": method.name, "seed": str(outcomes[0].seed)})
        )
    return summary


def _config_dict(config: ExperimentConfig) -> dict:
    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return plain(config)
