"""The reported round is the one the chosen validation metric prefers."""

import pytest

from mmfedrec.config import RunConfig
from mmfedrec.config.codec import with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.engines.runner import train_seed
from tests.federation.helpers import planted_split


@pytest.mark.parametrize("metric", ["ndcg@10", "hr@10"])
def test_the_best_round_maximises_the_selection_metric(metric: str) -> None:
    settings = with_settings(RunConfig(method="fedavg-mf"), rounds=6, eval_every=1, select_on=metric)
    outcome = train_seed(method_spec("fedavg-mf"), planted_split(), None, settings, seed=0)
    values = [entry["valid"]["sampled"][metric] for entry in outcome.curve]
    assert outcome.best_round == values.index(max(values)) + 1  # the first round reaching the best value
    assert outcome.valid["sampled"][metric] == max(values)


def test_an_unknown_selection_metric_is_refused() -> None:
    with pytest.raises(MmfedrecError, match=r"--select-on \(select_on\) must be one of ndcg@10, hr@10, got 'mrr@10'"):
        with_settings(RunConfig(method="fedavg-mf"), select_on="mrr@10")
