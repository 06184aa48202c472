"""Client steps read from the data: the "auto" settings of `LocalConfig`.

How much a typical client holds decides how its steps should move the shared state. Clients with
long histories (dense data: MovieLens' tens of ratings per user) agree on each item's direction,
and FedMF's plain SGD step on the averaged update moves an item vector by how much they agree;
clients with a handful of events (sparse data: the H&M sample, the synthetic set) send noisy
updates, where Adam's bounded first step is safer and the shared experts must learn slowly, or a
few events overfit them within a few rounds. The median client's count separates 12 of 15 data
sets measured; the median item's, used before, only 5: MovieLens subsets with 2 to 16 training
interactions per item want the dense steps, synthetic sets with 28 per item the sparse ones
(benchmarks/README.md, "Which statistic decides the client steps").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split


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
    """One log line naming the steps "auto" chose for this split, or None when none was auto."""
    if config.local.is_resolved:
        return None
    median = median_client_interactions(split)
    dense = _dense(config, median)
    local = config.local.resolved(dense)
    optimizer, lr = local.row_step
    return (
        f"the median client has {median:g} training interactions (--dense-events {config.local.dense_events}): "
        f"{'dense' if dense else 'sparse'} data, item step {optimizer} at {lr:g}, shared step {local.shared_lr:g}"
    )
