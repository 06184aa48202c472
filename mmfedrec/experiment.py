"""One experiment: a method trained and evaluated on a dataset over seeds, written to a run folder.

The orchestrator owns the run folder and calls every engine through one contract (`train_seed`:
in-process batched or loop, central, popularity; `flower_seed_trainer`: Flower's Simulation and
Deployment Engines), so resume, reports and `summary.json` are one code path for all engines.
Outputs: config.json (the resolved configuration tree), metrics.jsonl (one line per round, written
as it runs), seed-N.json per finished seed, summary.json, report.md, valid_curve.png and the best
model of the first seed (safetensors).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from mmfedrec.atomic import write_atomic
from mmfedrec.config.codec import from_dict, read_config_file, to_dict
from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import AugmentConfig, RunConfig, replace
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.engines.runner import SeedOutcome

FAILED = "FAILED"  # a run folder whose run failed holds this file, with the error


def _log(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def uses_features(config: RunConfig) -> bool:
    """Whether a run reads item features: its method's content, or item-kNN's neighbours (a
    diffusion denoiser is conditioned on them exactly when the run has them)."""
    return bool(method_spec(config.method).modalities) or config.augment.augment == "item-knn"


def load_features(config: RunConfig, catalog, progress: bool):
    """Item features for methods that use content (cached; computed on demand)."""
    from mmfedrec.encoders.features import features_for_run

    features = features_for_run(config, catalog, progress)
    _log(f"item features: {features.metadata.get('image_weights', 'no image')} image tower", progress)
    return features


def seed_trainer(engine: str, progress: bool = True):
    """The engine's `train_seed`: one contract for every engine."""
    if engine.startswith("flower"):
        from mmfedrec.federation.flower.launcher import flower_seed_trainer

        return flower_seed_trainer(engine, on_progress=lambda line: _log(line, progress))
    from mmfedrec.federation.engines.runner import train_seed

    return train_seed


def run_experiment(
    config: RunConfig, out: Path, progress: bool = True, resume: bool = False, overwrite: bool = False
) -> dict:
    """Train `config.method` for every seed and write the run folder `out`; returns the summary.

    With `resume`, seeds already finished in `out` are read back, not trained again, and an
    unfinished seed continues from its last checkpoint (`--checkpoint-every`). A folder that
    holds another run is refused unless `overwrite`; a run that fails leaves `FAILED` (the error)
    in its folder, which a later success removes.
    """
    out = prepare_run_folder(Path(out), resume, overwrite)
    try:
        summary = _run(config, out, progress, resume)
    except BaseException as error:
        write_atomic(out / FAILED, f"{type(error).__name__}: {error}\n")
        raise
    (out / FAILED).unlink(missing_ok=True)
    return summary


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> Path:
    """`out`, ready for a run: created, or emptied of the run it holds when asked to."""
    if out.exists() and not out.is_dir():
        raise MmfedrecError(f"--out {out}: a file is there; expected a folder for the run")
    holds_run = (out / "config.json").is_file()
    if resume and not holds_run:
        raise MmfedrecError(f"--resume {out}: not a run folder (no config.json)")
    if holds_run and not resume:
        if not overwrite:
            raise MmfedrecError(
                f"--out {out} holds a run already; pass --overwrite to replace it, or --resume {out} to continue it"
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MmfedrecError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return out


def _run(config: RunConfig, out: Path, progress: bool, resume: bool) -> dict:
    from mmfedrec.data.registry import load_dataset, split_order
    from mmfedrec.evaluation.report import write_json
    from mmfedrec.federation.local.auto_steps import describe as describe_steps
    from mmfedrec.federation.local.auto_steps import describe_probe

    method = method_spec(config.method)
    on_flower = config.engine.startswith("flower")
    if on_flower:
        from mmfedrec.federation.flower.run_config import check_flower_support

        check_flower_support(config)
    train_seed = seed_trainer(config.engine, progress)
    if not resume:
        write_json(out / "config.json", to_dict(config))
    dataset = load_dataset(config.data)  # fails fast on bad data; fills the cache other processes read
    for line in dataset.note_lines():
        _log(f"data: {line}", progress)
    split_kind = split_order(config.data, dataset)
    if split_kind != config.data.split:
        _log("data: no timestamps; leave-one-out in seeded random order", progress)
    if config.model.history > 0 and split_kind == "random":
        raise MmfedrecError(
            "--history reads each client's items in time order and learns to predict the next one; this split has "
            "no time order (--split random or no timestamps), so drop --history"
        )
    candidates = config.eval.eval_negatives + 1
    if candidates <= 50:
        _log(
            f"warning: the sampled protocol ranks each held-out item among {candidates} candidates only: "
            f"HR@10 by chance is {min(1.0, 10 / candidates):.2f} (raise --eval-negatives for meaningful numbers)",
            progress,
        )
    features = None
    if not on_flower and uses_features(config):
        features = load_features(config, dataset.catalog, progress)
    rounds = config.train.rounds
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
                _log(f"[{method.name} seed {seed}] already finished (resumed run)", progress)
                continue
            split, groups = run_split(config, seed, progress)
            if seed == config.seeds[0] and method.kind == "federated" and (line := describe_steps(config, split)):
                _log(f"data: {line}", progress)
            augmenter = build_augmenter(config.augment, features, split.item_ids)  # fitted once per seed
            pseudo = augment(
                split, config.augment, features, out if seed == config.seeds[0] else None, progress, augmenter
            )
            joining = new_clients(config, seed, features, augmenter) if config.augment.new_clients > 0 else None

            def on_round(entry: dict, seed: int = seed) -> None:
                replayed = entry.pop("replayed", False)
                metrics_file.write(json.dumps({"method": method.name, **entry}) + "\n")
                metrics_file.flush()
                valid = entry.get("valid")
                score = f" valid ndcg@10 {valid['sampled']['ndcg@10']:.4f}" if valid else ""
                how = "from the checkpoint, not trained again" if replayed else f"{entry['seconds']:.2f} s"
                _log(f"[{method.name} seed {seed}] round {entry['round']}/{rounds}{score} ({how})", progress)

            checkpoint = out / f"checkpoint-seed{seed}.safetensors"
            if not resume:
                checkpoint.unlink(missing_ok=True)
            elif checkpoint.exists():
                _log(f"[{method.name} seed {seed}] resuming from {checkpoint.name}", progress)
            outcome = train_seed(
                method,
                split,
                features,
                config,
                seed,
                groups,
                pseudo,
                on_round=on_round,
                checkpoint=checkpoint,
                joining=joining,
            )
            outcomes.append(outcome)
            if seed == config.seeds[0] and outcome.best_state:
                _save_model(out / "model.safetensors", outcome, method.name)
            write_json(finished, outcome.to_json())
            if outcome.steps:
                _log(f"[{method.name} seed {seed}] {describe_probe(outcome.steps, config.eval.select_on)}", progress)
            if outcome.stopped_round is not None:
                _log(
                    f"[{method.name} seed {seed}] stopped after round {outcome.stopped_round}: validation "
                    f"{config.eval.select_on} did not improve for {config.eval.patience} evaluations "
                    f"(best round {outcome.best_round})",
                    True,
                )
            if (decay := outcome.decay(config.eval.select_on)) is not None:
                _log(
                    f"[{method.name} seed {seed}] warning: validation {config.eval.select_on} decayed to {decay:.0%} of "
                    f"its best by the last round; round {outcome.best_round} is reported (--patience N stops such "
                    "runs early; lower steps or fewer rounds may avoid it)",
                    True,  # a warning, shown even with --quiet
                )
            if outcome.diverged_round is not None:
                _log(
                    f"[{method.name} seed {seed}] training diverged at round {outcome.diverged_round} (NaN/inf "
                    "update); kept the best round before it. Lower the learning rates.",
                    True,  # a warning, shown even with --quiet
                )
            _log(
                f"[{method.name} seed {seed}] best round {outcome.best_round}: test ndcg@10 {outcome.test['sampled']['ndcg@10']:.4f}",
                progress,
            )
    return write_summary(config, out, outcomes, time.perf_counter() - started, features, split_kind)


def write_summary(
    config: RunConfig, out: Path, outcomes: list[SeedOutcome], seconds: float, features=None, split: str = "time"
) -> dict:
    """summary.json and report.md of a finished run, whichever engine trained it."""
    from mmfedrec.evaluation.report import summarize, write_json, write_report

    extra = {
        "total_seconds": round(seconds, 2),
        "engine": config.engine,
        "split": split,  # as used: "random" for data without timestamps whatever was asked
        "augment": to_dict(config.augment),
    }
    summary = summarize(config.method, config.data.dataset, outcomes, extra)
    if features is not None:
        summary["features"] = dict(features.metadata)
    summary["faults"] = {
        "dropped": float(np.mean([o.dropped for o in outcomes])),
        "rejected_updates": float(np.mean([o.rejected_updates for o in outcomes])),
        "diverged_rounds": [o.diverged_round for o in outcomes if o.diverged_round is not None],
        "stopped_rounds": [o.stopped_round for o in outcomes if o.stopped_round is not None],
        "decayed_seeds": [o.seed for o in outcomes if o.decay(config.eval.select_on) is not None],
    }
    if config.privacy.dp_epsilon > 0:
        summary["privacy"] = {
            "epsilon": float(np.mean([o.epsilon for o in outcomes])),
            "delta": config.privacy.dp_delta,
            "target_epsilon": config.privacy.dp_epsilon,
        }
    if any(o.steps for o in outcomes):  # the "auto" client steps each seed's probe chose
        summary["client_steps"] = [{"seed": o.seed, **o.steps} for o in outcomes if o.steps]
    summary["config"] = to_dict(config)
    out = Path(out)
    write_json(out / "summary.json", summary)
    engine = config.engine
    title = f"{config.method} on {config.data.dataset}" + ("" if engine == "sim" else f" ({engine})")
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


def run_split(config: RunConfig, seed: int, progress: bool = False):
    """(split, groups) a run trains on for `seed`: the leave-one-out split, then the sparse-client
    and cold-start protocols (every reader of a run rebuilds it here: training, tuning, the app)."""
    from mmfedrec.data.registry import prepare_split
    from mmfedrec.data.splits import make_cold_items

    data = config.data
    split = prepare_split(data, seed, config.eval.eval_negatives, use_cache=data.cache_dir is not None)
    split, groups = apply_sparse_protocol(split, config.augment, seed)
    if config.eval.cold_items > 0:
        split, cold = make_cold_items(split, config.eval.cold_items, seed)
        _log(f"[seed {seed}] cold-start protocol: {len(cold)} items lost their training events", progress)
    return split, groups


def apply_sparse_protocol(split, augment_config: AugmentConfig, seed: int):
    """The sparse-client protocols: cut a seeded fraction of clients to their most recent events,
    or hold a fraction out of training (they join afterwards, `new_clients`).

    Returns the split training runs on and the groups reported beside the activity buckets:
    {"sparse": clients made sparse, "dense": the other evaluated clients}, or None.
    """
    from mmfedrec.generators import hold_out_clients, make_sparse

    if augment_config.new_clients > 0:
        split, _ = hold_out_clients(split, augment_config.new_clients, max(augment_config.join_items), seed)
        return split, None
    if augment_config.sparse_fraction <= 0:
        return split, None

    split, made_sparse = make_sparse(split, augment_config.sparse_fraction, augment_config.sparse_max, seed)
    dense = np.setdiff1d(split.evaluated_users("test"), made_sparse)
    return split, {"sparse": made_sparse, "dense": dense}


def new_clients(config: RunConfig, seed: int, features, augmenter=None):
    """The clients the new-client protocol held out of `seed`'s training, and how they join
    (`augmenter`: the one training used, already fitted, which no joiner's events trained)."""
    from mmfedrec.federation.engines.joining import Joining
    from mmfedrec.generators import hold_out_clients

    settings = config.augment
    full_split, _ = run_split(replace(config, augment=replace(settings, new_clients=0.0)), seed)
    _, joiners = hold_out_clients(full_split, settings.new_clients, max(settings.join_items), seed)

    def pseudo(split):
        return augment(split, settings, features, None, False, augmenter)

    return Joining(full_split, joiners, settings.join_items, settings.join_epochs, pseudo)


def item_embedding_matrix(features, item_ids: np.ndarray) -> np.ndarray:
    """(I, Dt + Di) unit-norm text and image features side by side, rows in `item_ids` order."""
    import pandas as pd

    position = pd.Index(features.item_ids).get_indexer(item_ids)
    parts = [m[position] for m in (features.text, features.image) if m is not None]
    return np.concatenate(parts, axis=1).astype(np.float32)


def build_augmenter(augment_config: AugmentConfig, features, item_ids: np.ndarray):
    """The configured augmenter, not fitted yet (None without augmentation)."""
    if augment_config.augment == "none":
        return None
    from mmfedrec.generators import augmenter_from_name

    name = augment_config.augment
    embeddings = item_embedding_matrix(features, item_ids) if name == "item-knn" else None
    options = diffusion_options(augment_config, features, item_ids) if name == "diffusion" else {}
    return augmenter_from_name(name, item_embeddings=embeddings, **options)


def augment(split, augment_config: AugmentConfig, features, out: Path | None, progress: bool, augmenter=None):
    """Pseudo-interactions for sparse clients as (users, items, weights), or None.

    `augmenter` (from `build_augmenter`) is fitted on the first split it augments and reused
    after (a denoiser is trained once per seed); None builds one for this call. With `out`, they
    are saved to `pseudo_interactions.safetensors` (and a diffusion denoiser to `denoiser/`) so
    the app and `mmfedrec synth` can show what augmentation did.
    """
    if augment_config.augment == "none":
        return None
    from mmfedrec.generators import AugmentationPolicy

    name = augment_config.augment
    augmenter = augmenter or build_augmenter(augment_config, features, split.item_ids)
    policy = AugmentationPolicy(
        augment_config.sparse_max, augment_config.n_pseudo, augment_config.pseudo_weight, augment_config.min_confidence
    )
    started = time.perf_counter()
    pseudo = augmenter.augment(split, policy)
    _log(
        f"augmentation {name}: {len(pseudo)} pseudo-interactions for the {len(np.unique(pseudo.users))} clients "
        f"with at most {augment_config.sparse_max} training events ({time.perf_counter() - started:.1f} s)",
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
        write_atomic(out / "pseudo_interactions.safetensors", save(arrays, metadata={"augment": name}))
        synthesizer = getattr(augmenter, "synthesizer", None)
        if synthesizer is not None:
            synthesizer.denoiser.save_pretrained(out / "denoiser")
    return pseudo.users, pseudo.items, pseudo.weights


def diffusion_options(augment_config: AugmentConfig, features, item_ids: np.ndarray) -> dict:
    """The diffusion augmenter's settings from the configuration tree, and the item features its
    denoiser is conditioned on (when asked and the run has them)."""
    import torch

    from mmfedrec.generators import DiffusionAugmenterConfig, FederatedDenoiserConfig

    config = DiffusionAugmenterConfig(
        federated=FederatedDenoiserConfig(rounds=augment_config.denoiser_rounds),
        strength=augment_config.diffusion_strength,
        num_inference_steps=augment_config.diffusion_steps,
    )
    condition = None
    if augment_config.diffusion_condition == "items+features" and features is not None:
        condition = torch.from_numpy(item_embedding_matrix(features, item_ids))
    return {"config": config, "condition_features": condition}


def diffusion_augmenter(run_dir: Path, split, augment_config: AugmentConfig, features):
    """The diffusion augmenter of a run, from the denoiser it saved in `<run>/denoiser`."""
    from mmfedrec.generators import (
        ProfileDenoiser,
        ProfileSpace,
        ProfileSynthesizer,
        augmenter_from_name,
        sampling_scheduler,
        training_scheduler,
    )

    options = diffusion_options(augment_config, features, split.item_ids)
    denoiser = ProfileDenoiser.from_pretrained(run_dir / "denoiser").eval()
    space = ProfileSpace(split.n_items, condition_features=options["condition_features"])
    synthesizer = ProfileSynthesizer(denoiser, sampling_scheduler(training_scheduler()), space)
    return augmenter_from_name("diffusion", synthesizer=synthesizer, config=options["config"])


def rebuild_augmenter(config: RunConfig, split, run_dir: Path):
    """The run's fitted augmenter: the saved denoiser for diffusion, a fresh one for the others."""
    from mmfedrec.generators import augmenter_from_name

    name = config.augment.augment
    features = None
    if name in ("item-knn", "diffusion") and uses_features(config):
        from mmfedrec.data.registry import load_dataset

        features = load_features(config, load_dataset(config.data).catalog, False)
    if name == "diffusion":
        return diffusion_augmenter(Path(run_dir), split, config.augment, features)
    embeddings = item_embedding_matrix(features, split.item_ids) if name == "item-knn" else None
    return augmenter_from_name(name, item_embeddings=embeddings)


def load_run_config(run_dir: Path) -> RunConfig:
    """The configuration a run folder was trained with (its config.json)."""
    path = Path(run_dir)
    if not (path / "config.json").is_file():
        raise MmfedrecError(f"{path}: not a run folder (no config.json); expected a folder written by `mmfedrec train`")
    return from_dict(read_config_file(str(path)), str(path / "config.json"))
