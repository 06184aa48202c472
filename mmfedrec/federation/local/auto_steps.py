"""Client steps read from the data: the "auto" settings of `LocalConfig`.

How many clients train a typical item decides how an item vector should move. Where many do
(dense data), FedMF's plain SGD step on the averaged update moves it by how much the clients agree;
where only a few do, Adam's bounded first step is safer, and the shared experts must learn slowly,
or a few events per item overfit them within a few rounds (benchmarks/README.md, "Defaults from
data statistics").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split


def median_item_interactions(split: Split) -> float:
    """Training interactions of the median item: how many clients train a typical item."""
    return float(np.median(np.bincount(split.train_items, minlength=split.n_items)))


def _dense(config: RunConfig, median: float) -> bool:
    """Whether the median item's `median` training interactions reach `local.dense_items`."""
    return median >= config.local.dense_items


def resolved_steps(config: RunConfig, split: Split) -> RunConfig:
    """`config` with its "auto" client steps set for this split's data (`LocalConfig.resolved`)."""
    return replace(config, local=config.local.resolved(_dense(config, median_item_interactions(split))))


def describe(config: RunConfig, split: Split) -> str | None:
    """One log line naming the steps "auto" chose for this split, or None when none was auto."""
    if config.local.is_resolved:
        return None
    median = median_item_interactions(split)  # once: a bincount over every training event
    dense = _dense(config, median)
    local = config.local.resolved(dense)
    optimizer, lr = local.row_step
    return (
        f"the median item has {median:g} training interactions (--dense-items {config.local.dense_items}): "
        f"{'dense' if dense else 'sparse'} data, item step {optimizer} at {lr:g}, shared step {local.shared_lr:g}"
    )
