"""Hyperparameter search on validation only (Optuna: TPE sampling, pruning on the validation curve).

A study lives on disk (an Optuna journal file in the output folder), so a killed search resumes
where it stopped: `--trials N` is the study's total, not a number to add. The test split is never
read. The best trial's configuration is written as `best.toml`, which `mmfedrec train --config`
accepts, and every trial as a row of `trials.csv`.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from mmfedrec.atomic import write_atomic
from mmfedrec.config.codec import to_dict, to_toml, with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.config.spaces import SGD_ROW_LR, Param, augmentation_space, search_space
from mmfedrec.config.tree import AUTO_HISTORY, RunConfig
from mmfedrec.errors import MmfedrecError

JOURNAL = "study.journal"


TARGETS = ("model", "augmentation")


def tune(
    config: RunConfig,
    out: Path,
    trials: int,
    timeout: float | None = None,
    progress: bool = True,
    target: str = "model",
) -> RunConfig:
    """Search `config.method`'s space on validation of the first seed; returns the best configuration.

    Args:
        target: "model" searches the method's settings on every client's validation;
            "augmentation" searches the augmentation settings (`augmentation_space`), the model's
            as given, on the made-sparse clients' validation (the sparse protocol must be on).
    """
    import optuna

    from mmfedrec.data.registry import load_dataset, split_order
    from mmfedrec.experiment import augment, load_features, run_split, uses_features
    from mmfedrec.federation.engines.runner import resolved_history

    method = method_spec(config.method)
    dataset = load_dataset(config.data)
    seed = config.seeds[0]
    split, groups = run_split(config, seed)
    time_ordered = split_order(config.data, dataset) == "time"
    if target == "augmentation":
        if config.augment.augment == "none" or groups is None:
            raise MmfedrecError(
                "--target augmentation tunes an augmenter on the made-sparse clients: give --augment and --sparse-fraction"
            )
        space = augmentation_space(config.augment.augment, resolved_history(method, config, split) > 0)
    elif target == "model":
        space = search_space(method, time_ordered)
    else:
        raise MmfedrecError(f"--target must be one of {TARGETS}, got {target!r}")
    if not space:
        raise MmfedrecError(f"{config.method} has no settings to tune")
    features = load_features(config, dataset.catalog, progress) if uses_features(config) else None
    bucket = "sparse" if target == "augmentation" else None
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / JOURNAL)))
    study = optuna.create_study(
        study_name=config.method,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        load_if_exists=True,
    )
    if not study.trials:  # the first trials are the configuration given: tuning never ends below it
        for values in given_values(config, space):
            study.enqueue_trial(values)
    done = sum(t.state.is_finished() for t in study.trials)
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        from mmfedrec.federation.engines.runner import train_seed

        trial_config = with_settings(config, **suggest(trial, space))
        evaluations = 0

        def on_round(entry: dict) -> None:
            nonlocal evaluations
            if "valid" in entry and bucket is None:  # a round's entry holds no bucket: no pruning on one
                evaluations += 1
                trial.report(entry["valid"]["sampled"][config.eval.select_on], evaluations)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        pseudo = augment(split, trial_config.augment, features, None, False)
        outcome = train_seed(method, split, features, trial_config, seed, groups, pseudo, on_round=on_round)
        trial.set_user_attr("best_round", outcome.best_round)
        valid = outcome.valid if bucket is None else outcome.valid["buckets"][bucket]
        return float(valid["sampled"][config.eval.select_on])

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = "pruned" if trial.value is None else f"valid {config.eval.select_on} {trial.value:.4f}"
        best = study.best_value if any(t.value is not None for t in study.trials) else math.nan
        line = f"[tune {config.method}] trial {trial.number + 1}/{trials}: {value} (best {best:.4f}; {trial.params})"
        if progress:
            print(line, file=sys.stderr, flush=True)

    study.optimize(
        objective,
        n_trials=max(0, trials - done),
        timeout=timeout,
        callbacks=[report],
        catch=(MmfedrecError,),
    )
    completed = [t for t in study.trials if t.value is not None]
    if not completed:
        raise MmfedrecError(f"no trial of {config.method} completed; see {out / JOURNAL}")
    best = with_settings(config, **study.best_trial.params)
    write_atomic(out / "best.toml", to_toml(best))
    write_atomic(out / "trials.csv", study.trials_dataframe().to_csv(index=False))
    if progress:
        print(
            f"[tune {config.method}] {len(study.trials)} trials in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return best


def given_values(config: RunConfig, space: dict[str, Param]) -> list[dict]:
    """The searched settings of `config` as a run would train them: one set, or with "auto" client
    steps one per step set the probe chooses between (`auto_steps.STEP_REGIMES`)."""
    from mmfedrec.federation.local.auto_steps import STEP_REGIMES, with_steps

    if config.local.is_resolved:
        return [current_values(config, space)]
    candidates = [current_values(with_steps(config, regime), space) for regime in STEP_REGIMES]
    return [values for index, values in enumerate(candidates) if values not in candidates[:index]]


def current_values(config: RunConfig, space: dict[str, Param]) -> dict[str, object]:
    """`config`'s own values of the searched settings ("" item steps: the client optimizer's)."""
    flat = {
        name: value
        for section in to_dict(config).values()
        if isinstance(section, dict)
        for name, value in section.items()
    }
    values = {name: flat[name] for name in space}
    if values.get("history") == -1:  # "auto": where history is searched (moe, time order) it means
        values["history"] = AUTO_HISTORY  # the latest AUTO_HISTORY items (`runner.resolved_history`)
    if values.get("row_optimizer") == "":
        values["row_optimizer"] = config.local.local_optimizer
    if values.get("row_optimizer") == "sgd" and config.local.row_lr:
        values["row_lr"] = config.local.row_lr
    return values


def suggest(trial, space: dict[str, Param]) -> dict[str, object]:
    """One point of `space`; an SGD item step also gets its learning rate."""
    values: dict[str, object] = {}
    for name, param in space.items():
        values[name] = _suggest_one(trial, name, param)
    if values.get("row_optimizer") == "sgd":
        values["row_lr"] = _suggest_one(trial, "row_lr", SGD_ROW_LR)
    return values


def _suggest_one(trial, name: str, param: Param) -> object:
    if param.choices:
        return trial.suggest_categorical(name, list(param.choices))
    return trial.suggest_float(name, param.low, param.high, log=param.log)
