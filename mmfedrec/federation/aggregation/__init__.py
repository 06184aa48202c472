"""Aggregation strategies as small pure functions, one algorithm per file."""

from mmfedrec.federation.aggregation.fedavg import fedavg

__all__ = ["fedavg"]
