"""Aggregation strategies as small pure functions, one algorithm per file."""

from mmfedrec.federation.aggregation.expertwise import expertwise_mean
from mmfedrec.federation.aggregation.fedadam import ServerOptimizer
from mmfedrec.federation.aggregation.fedavg import fedavg, fedavg_stacked
from mmfedrec.federation.aggregation.item_rows import item_row_mean

__all__ = ["ServerOptimizer", "expertwise_mean", "fedavg", "fedavg_stacked", "item_row_mean"]
