"""Additive partial sums of client updates, so any grouping of clients aggregates the same way.

FedAvg, expert-wise averaging and item-row averaging are all ratios of sums over clients.
A silo (a Flower SuperNode holding many users) can therefore send the sums for its clients,
and the server adds the silos' sums and divides once: exactly what the in-process engine
computes client by client.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmfedrec.config.tree import ROW_AVERAGES
from mmfedrec.federation.local.training import LocalResult


@dataclass
class UpdateSums:
    weighted: dict[str, Tensor]  # name -> sum_c w_c * delta_c (expert tensors: per expert)
    weights: dict[str, Tensor]  # name -> sum_c w_c, a scalar (or (K,) for expert tensors)
    row_sum: Tensor  # (I, D + 1) sum of item-vector updates
    row_senders: Tensor  # (I,) how many clients sent an update for each item
    row_positives: Tensor  # (I,) how many clients hold each item as a training positive (the tower's evidence)
    clients: Tensor  # () how many clients' updates are summed

    def __add__(self, other: UpdateSums) -> UpdateSums:
        return UpdateSums(
            {k: v + other.weighted[k] for k, v in self.weighted.items()},
            {k: v + other.weights[k] for k, v in self.weights.items()},
            self.row_sum + other.row_sum,
            self.row_senders + other.row_senders,
            self.row_positives + other.row_positives,
            self.clients + other.clients,
        )

    def tensors(self) -> dict[str, Tensor]:
        """Flat name -> tensor view, for sending over the wire."""
        flat = {f"weighted.{k}": v for k, v in self.weighted.items()}
        flat |= {f"weights.{k}": v for k, v in self.weights.items()}
        rows = {"row_sum": self.row_sum, "row_senders": self.row_senders, "row_positives": self.row_positives}
        return flat | rows | {"clients": self.clients}

    @classmethod
    def from_tensors(cls, flat: dict[str, Tensor]) -> UpdateSums:
        def group(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}

        rows = flat["row_sum"], flat["row_senders"], flat["row_positives"]
        return cls(group("weighted."), group("weights."), *rows, flat["clients"])


def update_sums(result: LocalResult, touched: Tensor, n_items: int, expertwise: bool) -> UpdateSums:
    """Sums for one chunk of clients (`touched`: `result.touched_items(n_items)`, to count each
    client once per item it sent)."""
    weighted, weights = {}, {}
    for name, delta in result.shared_delta.items():  # (C, ...)
        if expertwise and name.startswith("experts.") and result.routed_mass is not None:
            mass = result.routed_mass  # (C, K)
            weighted[name] = torch.einsum("ck,ck...->k...", mass, delta)  # no (C, K, ...) product formed
            weights[name] = mass.sum(0)
        else:
            weighted[name] = torch.tensordot(result.n_examples, delta, dims=1)
            weights[name] = result.n_examples.sum()
    row_sum = result.item_row_sums(n_items)
    row_senders = touched.sum(0).float()
    clients = torch.tensor(float(len(result.n_examples)))
    return UpdateSums(weighted, weights, row_sum, row_senders, result.positive_senders(n_items), clients)


def average_rows(row_sum: Tensor, senders: Tensor, clients: float | Tensor, row_average: str) -> Tensor:
    """The item-row update (I, D + 1) from the summed updates: each item's sum divided by its
    `senders` (I,), the clients that trained it (FedMF), or by all `clients` of the round, as FedAvg
    over the whole table does (PFedRec's code), so that a rarely touched item moves little."""
    if row_average == "clients":
        return row_sum / max(1.0, float(clients))
    if row_average != "senders":
        raise ValueError(f"row_average must be one of {ROW_AVERAGES}, got {row_average!r}")
    return row_sum / senders.clamp_min(1).unsqueeze(-1)


def finalize(sums: UpdateSums, row_average: str = "senders") -> tuple[dict[str, Tensor], Tensor]:
    """(mean shared deltas, item-row update as `average_rows` says); a zero weight gives a zero update."""
    delta = {}
    for name, weighted in sums.weighted.items():
        weight = sums.weights[name]
        delta[name] = weighted / weight.clamp_min(1e-12).view(*weight.shape, *[1] * (weighted.dim() - weight.dim()))
    return delta, average_rows(sums.row_sum, sums.row_senders, sums.clients, row_average)
