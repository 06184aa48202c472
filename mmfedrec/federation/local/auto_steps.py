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


def is_dense(config: RunConfig, split: Split) -> bool:
    """Whether the median item has at least `local.dense_items` training interactions."""
    return median_item_interactions(split) >= config.local.dense_items


def resolved_steps(config: RunConfig, split: Split) -> RunConfig:
    """`config` with its "auto" client steps set for this split's data (`LocalConfig.resolved`)."""
    return replace(config, local=config.local.resolved(is_dense(config, split)))


def describe(config: RunConfig, split: Split) -> str | None:
    """One log line naming the steps "auto" chose for this split, or None when none was auto."""
    if config.local.is_resolved:
        return None
    local = resolved_steps(config, split).local
    optimizer, lr = local.row_step
    regime = "dense" if is_dense(config, split) else "sparse"
    return (
        f"the median item has {median_item_interactions(split):g} training interactions (--dense-items "
        f"{config.local.dense_items}): {regime} data, item step {optimizer} at {lr:g}, shared step {local.shared_lr:g}"
    )
