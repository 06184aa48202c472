"""The Flower run config: the configuration tree flattened to `section.field` keys.

pyproject.toml's `[tool.flwr.app.config]` holds the tree's defaults as nested tables, which flwr
flattens the same way (a test keeps the two equal); `flwr run --run-config 'local.lr=0.1'`
overrides a key. One Flower run trains one seed, so `seeds` holds exactly one. The ClientApp and
ServerApp read the tree once per message with `from_run_config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from mmfedrec.config.codec import flatten, from_flat
from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError


def to_run_config(config: RunConfig, seed: int) -> dict[str, str | int | float | bool]:
    """The flat run config of one seed of `config`."""
    return flatten(dataclasses.replace(config, seeds=(seed,)))


def from_run_config(run_config: Mapping[str, object]) -> RunConfig:
    """The tree from Flower's `context.run_config`; unknown keys and wrong types are errors."""
    config = from_flat(run_config, "Flower run config")
    if len(config.seeds) != 1:
        raise MmfedrecError(f"a Flower run trains one seed; run config seeds = {config.seeds}")
    return config


def check_flower_support(config: RunConfig) -> None:
    """Refuse, in one line, what the Flower engines do not run."""
    method = method_spec(config.method)
    if method.kind != "federated" or not method.federate:
        raise MmfedrecError(f"method {config.method!r} is not a federated method that aggregates; run it in-process")
    if method.personal_items or config.federated.personal_items:
        raise MmfedrecError(f"{config.method} keeps per-client item vectors: in-process only (--engine sim or loop)")
    if config.augment.augment != "none" or config.augment.sparse_fraction > 0 or config.augment.new_clients > 0:
        raise MmfedrecError(
            "augmentation and the sparse-client and new-client protocols run in-process only (--engine sim)"
        )
    robust = config.robust
    if robust.byzantine > 0 or robust.dropout > 0 or config.train.checkpoint_every:
        raise MmfedrecError(
            "simulated attacks, simulated dropout and checkpoints run in-process only (--engine sim); "
            "on Flower, attackers and failures are real nodes"
        )
    if config.eval.patience:
        raise MmfedrecError("--patience is not supported on the Flower engines (every round runs)")


def flower_split(config: RunConfig) -> Split:
    """The leave-one-out split every process derives from the same data (cached when cache_dir is
    set), under the cold-start protocol when the run asks for it, as the in-process engine's."""
    from mmfedrec.data.registry import prepare_split
    from mmfedrec.data.splits import make_cold_items

    data, seed = config.data, config.seeds[0]
    split = prepare_split(data, seed, config.eval.eval_negatives, use_cache=data.cache_dir is not None)
    if config.eval.cold_items > 0:
        split, _ = make_cold_items(split, config.eval.cold_items, seed)
    return split
