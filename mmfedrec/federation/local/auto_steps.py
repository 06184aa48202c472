"""Client steps read from the data: the "auto" settings of `LocalConfig`.

How much a typical client holds decides how its steps should move the shared state. Clients with
long histories (MovieLens' tens of ratings per user) agree on each item's direction, and FedMF's
plain SGD step on the averaged update moves an item vector by how much they agree; clients with a
handful of events (the H&M sample, the synthetic set) send noisy updates, where Adam's bounded
first step is safer and the shared experts must learn slowly, or a few events overfit them within
a few rounds. No count tells the two kinds apart on every data set measured (MovieLens cut to 8
ratings per user wants the dense steps with as few events per client as H&M), so the in-process
engines train both sets for a few rounds and keep the better on validation (`probes_steps`,
`runner._probe_steps`): right on 25 of 25 runs, the median client's count on 21
(benchmarks/README.md, "Client steps chosen on validation"). The count still decides where a
probe cannot run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split

STEP_REGIMES = ("dense", "sparse")  # the two sets of "auto" steps (`AUTO_STEPS`); a tie keeps the first


def probes_steps(config: RunConfig) -> bool:
    """Whether a seed chooses its "auto" steps by training both for `local.steps_probe` rounds and
    keeping the better on validation (`runner._probe_steps`): in-process engines only (a probe on
    Flower would train every silo twice), and not under DP (the clients would spend their
    privacy budget twice). Elsewhere the median client's count decides."""
    return (
        not config.local.is_resolved
        and config.local.steps_probe > 0
        and config.engine in ("sim", "loop")
        and config.privacy.dp_epsilon <= 0
    )


def with_steps(config: RunConfig, regime: str) -> RunConfig:
    """`config` with its "auto" client steps set to those of `regime` ("dense" or "sparse")."""
    if regime not in STEP_REGIMES:
        raise ValueError(f"client steps must be one of {STEP_REGIMES}, got {regime!r}")
    return replace(config, local=config.local.resolved(regime == "dense"))


def median_client_interactions(split: Split) -> float:
    """Training interactions of the median client: how much a typical client holds."""
    return float(np.median(split.train_counts()))


def _dense(config: RunConfig, median: float) -> bool:
    """Whether the median client's `median` training interactions reach `local.dense_events`."""
    return median >= config.local.dense_events


def resolved_steps(config: RunConfig, split: Split) -> RunConfig:
    """`config` with its "auto" client steps set for this split's data (`LocalConfig.resolved`)."""
    return replace(config, local=config.local.resolved(_dense(config, median_client_interactions(split))))


def describe(config: RunConfig, split: Split) -> str | None:
    """One log line naming how the "auto" steps are chosen for this split, or None when none is auto."""
    if config.local.is_resolved:
        return None
    if probes_steps(config):
        return (
            f"client steps: each seed trains the dense and the sparse steps for {config.local.steps_probe} rounds "
            f"(--steps-probe) and keeps the better on validation {config.eval.select_on}"
        )
    median = median_client_interactions(split)
    dense = _dense(config, median)
    local = config.local.resolved(dense)
    optimizer, lr = local.row_step
    return (
        f"the median client has {median:g} training interactions (--dense-events {config.local.dense_events}): "
        f"{'dense' if dense else 'sparse'} data, item step {optimizer} at {lr:g}, shared step {local.shared_lr:g}"
    )


def describe_probe(steps: dict, metric: str) -> str:
    """One log line naming the steps a seed's probe kept and what validation saw."""
    scores = ", ".join(
        f"{regime} {'diverged' if value is None else f'{value:.4f}'}" for regime, value in steps["valid"].items()
    )
    return f"client steps: {steps['chosen']} (validation {metric} at round {steps['probe_rounds']}: {scores})"
