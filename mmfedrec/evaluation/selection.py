"""Model selection on validation only: which evaluated round a run reports (every engine uses this)."""

from __future__ import annotations

from dataclasses import dataclass, field

DECAYED = 0.95  # a last validation below this share of the best round's is a decayed curve


@dataclass
class BestRound:
    """The first round with the highest validation `metric` (sampled protocol); `stale` counts
    the evaluations since it last improved, for early stopping."""

    metric: str = "ndcg@10"
    value: float = -float("inf")
    round: int = 0
    valid: dict[str, object] = field(default_factory=dict)
    stale: int = 0

    def offer(self, round_index: int, valid: dict[str, object]) -> bool:
        """Take round `round_index`'s validation metrics; True when it is the new best (snapshot it)."""
        value = valid["sampled"][self.metric]
        if value > self.value:
            self.value, self.round, self.valid, self.stale = value, round_index, valid, 0
            return True
        self.stale += 1
        return False
