"""Aggregation strategies as small pure functions, one algorithm per file.

- `fedavg`: the example-weighted mean (McMahan et al., 2017);
- `sums`: FedAvg, expert-wise (routed-mass weighted) and per-item row means as additive sums,
  so clients, chunks and silos aggregate identically;
- `fedadam`: the server optimizer (FedAvg step or FedAdam).
"""

from mmfedrec.federation.aggregation.fedadam import ServerOptimizer
from mmfedrec.federation.aggregation.fedavg import fedavg

__all__ = ["ServerOptimizer", "fedavg"]
