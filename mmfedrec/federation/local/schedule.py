"""Learning-rate schedules over a run's rounds (a central trainer's epochs).

Constant client steps keep moving the model as much in the last round as in the first. A cosine
decay over the run (Loshchilov & Hutter, 2017) lets it settle: on ML-100K it raised the
history-aware model's validation NDCG@10 (benchmarks/README.md, "A history-aware user state").
"""

from __future__ import annotations

import math

from mmfedrec.config.tree import LR_SCHEDULES, LocalConfig, RunConfig


def lr_factor(schedule: str, round_index: int, rounds: int) -> float:
    """The share of the configured client learning rates that round `round_index` (1-based) of
    `rounds` trains at: 1 throughout (constant), or ½(1 + cos(π (r - 1) / R)), from 1 in the first
    round down towards 0 (cosine; never 0, so every round trains)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (min(round_index, rounds) - 1) / rounds))
    raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


def scheduled_local(config: RunConfig, round_index: int) -> LocalConfig:
    """The client steps of round `round_index` (1-based), learning rates as the schedule has them."""
    return config.local.scaled(lr_factor(config.train.lr_schedule, round_index, config.train.rounds))
