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
class AugmentConfig:
    name: str = "none"  # none | diffusion | popularity | item-knn
    sparse_fraction: float = 0.0  # sparse-client protocol: fraction of evaluated clients cut (0 = off)
    sparse_max: int = 5  # ... to their most recent `sparse_max` training events; also who gets augmented
    n_pseudo: int = 10  # pseudo-interactions added per sparse client
    weight: float = 0.5  # their weight in the local loss (a real interaction weighs 1)
    min_confidence: float = 0.0  # drop pseudo-items the augmenter scores below this


@dataclass(frozen=True)
class ExperimentConfig:
    method: str
    dataset: DatasetSpec
    out: Path
    seeds: tuple[int, ...] = (0,)
    eval_negatives: int = 99
    train: TrainSettings = field(default_factory=TrainSettings)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
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


def run_experiment(config: ExperimentConfig, resume: bool = False) -> dict:
    """Train `config.method` for every seed and write the run folder; returns the summary.

    With `resume`, seeds already finished in `config.out` are read back, not trained again, and
    an unfinished seed continues from its last checkpoint (`--checkpoint-every`).
    """
    from mmfedrec.data.registry import load_dataset, prepare_split
    from mmfedrec.evaluation.report import write_json
    from mmfedrec.federation.runner import train_seed

    method = method_spec(config.method)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(out / "config.json", _config_dict(config))
    dataset = load_dataset(config.dataset)
    features = None
    if method.modalities or config.augment.name == "item-knn":
        cache = None if config.dataset.cache_dir is None else Path(config.dataset.cache_dir) / "features"
        features = load_features(config, dataset.catalog, cache)
    metrics_path = out / "metrics.jsonl"
    outcomes: list[SeedOutcome] = []
    started = time.perf_counter()
    with metrics_path.open("w") as metrics_file:
        for seed in config.seeds:
            finished = out / f"seed-{seed}.json"
            if resume and finished.exists():
                outcome = _finished_outcome(finished, out / "model.safetensors" if seed == config.seeds[0] else None)
                for entry in outcome.curve:
                    metrics_file.write(json.dumps({"method": method.name, **entry}) + "\n")
                outcomes.append(outcome)
                _log(f"[{method.name} seed {seed}] already finished (resumed run)", config.progress)
                continue
            split = prepare_split(
                config.dataset, seed, config.eval_negatives, use_cache=config.dataset.cache_dir is not None
            )
            split, groups = apply_sparse_protocol(split, config.augment, seed)
            pseudo = augment(split, config.augment, features, out if seed == config.seeds[0] else None, config.progress)

            def on_round(entry: dict, seed: int = seed) -> None:
                metrics_file.write(json.dumps({"method": method.name, **entry}) + "\n")
                metrics_file.flush()
                valid = entry.get("valid")
                score = f" valid ndcg@10 {valid['sampled']['ndcg@10']:.4f}" if valid else ""
                _log(
                    f"[{method.name} seed {seed}] round {entry['round']}/{config.train.rounds}{score} ({entry['seconds']:.2f} s)",
                    config.progress,
                )

            checkpoint = out / f"checkpoint-seed{seed}.safetensors"
            if not resume:
                checkpoint.unlink(missing_ok=True)
            outcome = train_seed(
                method, split, features, config.train, seed, groups, pseudo, on_round=on_round, checkpoint=checkpoint
            )
            outcomes.append(outcome)
            if seed == config.seeds[0] and outcome.best_state:
                _save_model(out / "model.safetensors", outcome, method.name)
            write_json(finished, outcome.to_json())
            if outcome.diverged_round is not None:
                _log(
                    f"[{method.name} seed {seed}] training diverged at round {outcome.diverged_round} (NaN/inf "
                    "update); kept the best round before it. Lower the learning rates.",
                    True,  # a warning, shown even with --quiet
                )
            _log(
                f"[{method.name} seed {seed}] best round {outcome.best_round}: test ndcg@10 {outcome.test['sampled']['ndcg@10']:.4f}",
                config.progress,
            )
    return write_summary(config, outcomes, time.perf_counter() - started, features)


def write_summary(
    config: ExperimentConfig, outcomes: list[SeedOutcome], seconds: float, features=None, engine: str = "sim"
) -> dict:
    """summary.json and report.md of a finished run, whichever engine trained it."""
    from mmfedrec.evaluation.report import summarize, write_json, write_report

    extra = {"total_seconds": round(seconds, 2), "augment": dataclasses.asdict(config.augment)}
    summary = summarize(config.method, config.dataset.name, outcomes, extra)
    if features is not None:
        summary["features"] = dict(features.metadata)
    summary["faults"] = {
        "dropped": float(np.mean([o.dropped for o in outcomes])),
        "rejected_updates": float(np.mean([o.rejected_updates for o in outcomes])),
        "diverged_rounds": [o.diverged_round for o in outcomes if o.diverged_round is not None],
    }
    if config.train.dp_epsilon > 0:
        summary["privacy"] = {
            "epsilon": float(np.mean([o.epsilon for o in outcomes])),
            "delta": config.train.dp_delta,
            "target_epsilon": config.train.dp_epsilon,
        }
    out = Path(config.out)
    write_json(out / "summary.json", summary)
    title = f"{config.method} on {config.dataset.name}" + ("" if engine == "sim" else f" ({engine})")
    write_report(out, [summary], {config.method: [e for o in outcomes for e in o.curve]}, title)
    return summary


def _save_model(path: Path, outcome: SeedOutcome, method: str) -> None:
    """The best model of a seed, for the app and `--resume`."""
    from safetensors.torch import save

    from mmfedrec.atomic import write_atomic

    state = {k: v.contiguous() for k, v in outcome.best_state.items()}
    write_atomic(path, save(state, metadata={"method": method, "seed": str(outcome.seed)}))


def _finished_outcome(path: Path, model_path: Path | None) -> SeedOutcome:
    """A seed's outcome as written when it finished (with its model when it is the first seed)."""
    best_state = {}
    if model_path is not None and model_path.exists():
        from safetensors.torch import load_file

        best_state = load_file(str(model_path))
    return SeedOutcome(**json.loads(path.read_text()), best_state=best_state)


def apply_sparse_protocol(split, augment_config: AugmentConfig, seed: int):
    """The sparse-client protocol: cut a seeded fraction of clients to their most recent events.

    Returns the (possibly truncated) split and the groups reported beside the activity buckets:
    {"sparse": clients made sparse, "dense": the other evaluated clients}, or None when off.
    """
    if augment_config.sparse_fraction <= 0:
        return split, None
    from mmfedrec.generators import make_sparse

    split, made_sparse = make_sparse(split, augment_config.sparse_fraction, augment_config.sparse_max, seed)
    dense = np.setdiff1d(split.evaluated_users("test"), made_sparse)
    return split, {"sparse": made_sparse, "dense": dense}


def item_embedding_matrix(features, item_ids: np.ndarray) -> np.ndarray:
    """(I, Dt + Di) unit-norm text and image features side by side, rows in `item_ids` order."""
    import pandas as pd

    position = pd.Index(features.item_ids).get_indexer(item_ids)
    parts = [m[position] for m in (features.text, features.image) if m is not None]
    return np.concatenate(parts, axis=1).astype(np.float32)


def augment(split, augment_config: AugmentConfig, features, out: Path | None, progress: bool):
    """Pseudo-interactions for sparse clients as (users, items, weights), or None.

    With `out`, they are saved to `pseudo_interactions.safetensors` (and a diffusion denoiser to
    `denoiser/`) so the app and `mmfedrec synth` can show what augmentation did.
    """
    if augment_config.name == "none":
        return None
    from mmfedrec.generators import AugmentationPolicy, augmenter_from_name

    embeddings = item_embedding_matrix(features, split.item_ids) if augment_config.name == "item-knn" else None
    augmenter = augmenter_from_name(augment_config.name, item_embeddings=embeddings)
    policy = AugmentationPolicy(
        augment_config.sparse_max, augment_config.n_pseudo, augment_config.weight, augment_config.min_confidence
    )
    started = time.perf_counter()
    pseudo = augmenter.augment(split, policy)
    _log(
        f"augmentation {augment_config.name}: {len(pseudo)} pseudo-interactions for "
        f"{len(np.unique(pseudo.users))} sparse clients ({time.perf_counter() - started:.1f} s)",
        progress,
    )
    if out is not None:
        from safetensors.numpy import save

        from mmfedrec.atomic import write_atomic

        arrays = {
            "users": pseudo.users.astype(np.int64),
            "items": pseudo.items.astype(np.int64),
            "weights": pseudo.weights,
        }
        write_atomic(out / "pseudo_interactions.safetensors", save(arrays, metadata={"augment": augment_config.name}))
        synthesizer = getattr(augmenter, "synthesizer", None)
        if synthesizer is not None:
            synthesizer.denoiser.save_pretrained(out / "denoiser")
    return pseudo.users, pseudo.items, pseudo.weights


def rebuild_augmenter(config: ExperimentConfig, split, run_dir: Path):
    """The run's fitted augmenter: the saved denoiser for diffusion, a fresh one for the others."""
    from mmfedrec.generators import augmenter_from_name

    name = config.augment.name
    if name == "diffusion":
        from mmfedrec.generators import (
            ProfileDenoiser,
            ProfileSpace,
            ProfileSynthesizer,
            sampling_scheduler,
            training_scheduler,
        )

        denoiser = ProfileDenoiser.from_pretrained(Path(run_dir) / "denoiser").eval()
        synthesizer = ProfileSynthesizer(
            denoiser, sampling_scheduler(training_scheduler()), ProfileSpace(split.n_items)
        )
        return augmenter_from_name(name, synthesizer=synthesizer)
    embeddings = None
    if name == "item-knn":
        from mmfedrec.data.registry import load_dataset

        cache = None if config.dataset.cache_dir is None else Path(config.dataset.cache_dir) / "features"
        embeddings = item_embedding_matrix(
            load_features(config, load_dataset(config.dataset).catalog, cache), split.item_ids
        )
    return augmenter_from_name(name, item_embeddings=embeddings)


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


def load_experiment_config(run_dir: Path) -> ExperimentConfig:
    """The `ExperimentConfig` a run folder's config.json was written from."""
    import json as json_module

    from mmfedrec.errors import MmfedrecError
    from mmfedrec.federation.compression import CompressionConfig
    from mmfedrec.federation.defended import DefenseConfig
    from mmfedrec.federation.local import LocalConfig
    from mmfedrec.federation.simulation import FederatedConfig

    path = Path(run_dir) / "config.json"
    try:
        config = json_module.loads(path.read_text())
        dataset = dict(config["dataset"])
        for key, value in dataset.items():
            if key in _PATH_FIELDS and value is not None:
                dataset[key] = Path(value)
        train = dict(config["train"])
        federated = dict(train.pop("federated"))
        federated["local"] = LocalConfig(**federated["local"])
        federated["defense"] = DefenseConfig(**federated.get("defense", {}))
        federated["compression"] = CompressionConfig(**federated.get("compression", {}))
        return ExperimentConfig(
            method=config["method"],
            dataset=DatasetSpec(**dataset),
            out=Path(run_dir),
            seeds=tuple(config["seeds"]),
            eval_negatives=int(config["eval_negatives"]),
            train=TrainSettings(**train, federated=FederatedConfig(**federated)),
            features=FeatureConfig(**config["features"]),
            augment=AugmentConfig(**config.get("augment", {})),
            progress=False,
        )
    except FileNotFoundError:
        raise MmfedrecError(f"{path}: not found; expected a run folder written by `mmfedrec train`") from None
    except (KeyError, TypeError, ValueError) as error:
        raise MmfedrecError(f"{path}: not a run config this version can read ({error})") from None


_PATH_FIELDS = ("root", "interactions_file", "items_file", "items_table", "image_dir", "image_audit", "cache_dir")
