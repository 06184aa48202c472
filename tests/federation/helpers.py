"""Small seeded splits with planted structure for federation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmfedrec.data.splits import Split, leave_one_out
from mmfedrec.data.types import make_interactions


def planted_split(
    n_users: int = 60, n_items: int = 80, n_groups: int = 4, seed: int = 0, n_negatives: int = 20
) -> Split:
    """Users in `n_groups` taste groups, each liking its own block of items; 5-30 events each."""
    rng = np.random.default_rng(seed)
    rows = []
    block = n_items // n_groups
    for user in range(n_users):
        group = user % n_groups
        n = int(rng.integers(5, 30))
        liked = rng.choice(np.arange(group * block, (group + 1) * block), size=min(n, block), replace=False)
        for t, item in enumerate(liked):
            rows.append((user, int(item), t, 5.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    return leave_one_out(make_interactions(frame), seed=seed, n_negatives=n_negatives)


def small_flower_config(tmp_path, **changes):
    """A 2-round Flower run on 60 synthetic users: the shared setting of the Flower tests."""
    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings

    values = {
        "method": "ours-id-only",
        "synthetic_users": 60,
        "synthetic_items": 50,
        "cache_dir": str(tmp_path / "cache"),
        "rounds": 2,
        "dim": 16,
        "batch_size": 16,
        "eval_negatives": 20,
    }
    return with_settings(RunConfig(), **(values | changes))
