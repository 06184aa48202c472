"""Defended rounds: aggregation that needs every client's upload on its own.

A plain FedAvg round streams additive sums chunk by chunk (`aggregation/sums.py`). Defences act
per client: attackers corrupt their own upload, the server rejects non-finite uploads, DP clips
each client's whole update (DP-FedAvg, McMahan et al., 2018), robust aggregators take medians
over clients (Yin et al., 2018), secure aggregation masks each upload (Bonawitz et al., 2017).
`ClientUploads` holds a round's uploads as the server would receive them; `aggregate_defended`
turns them into the server's (shared delta, item-row update).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from mmfedrec.config.tree import PrivacyConfig, RobustConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation.faults import corrupt, finite_clients
from mmfedrec.federation.aggregation.robust import coordinate_median, robust_row_aggregate, trimmed_mean
from mmfedrec.federation.aggregation.sums import average_rows
from mmfedrec.federation.local.training import LocalResult, sum_by_key
from mmfedrec.federation.privacy.dp import add_gaussian_noise, clip_factors, flatten_updates, unflatten
from mmfedrec.federation.privacy.secure_agg import SCALE, encode_fixed, mask_updates, masked_total, unmask_sum

log = logging.getLogger("mmfedrec")


@dataclass(frozen=True)
class Defense:
    """A run's defences as the server applies them: its robust and privacy settings, and the DP
    noise multiplier that the accountant derived from the privacy budget (0 = no DP)."""

    robust: RobustConfig = field(default_factory=RobustConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    noise_multiplier: float = 0.0  # noise std on the sum, in units of `privacy.dp_clip`

    def __post_init__(self) -> None:
        if (self.privacy.secure_agg or self.noise_multiplier > 0) and self.robust.aggregator != "fedavg":
            raise MmfedrecError("secure aggregation and DP reveal only the sum: they cannot use median/trimmed-mean")

    @property
    def per_client(self) -> bool:
        """Whether a round needs each client's upload (else the streaming sums are exact and faster)."""
        robust = self.robust
        return (
            robust.aggregator != "fedavg"
            or robust.norm_bound > 0
            or self.noise_multiplier > 0
            or self.privacy.secure_agg
            or robust.byzantine > 0
        )


@dataclass
class ClientUploads:
    """A round's uploads: dense shared deltas per client, and each client's item-row updates
    merged per item (one row per (client, item), as a client sends them)."""

    clients: Tensor  # (C,) global client ids
    dense: dict[str, Tensor]  # name -> (C, ...)
    weights: Tensor  # (C,) examples per client
    row_owner: Tensor  # (R,) position in `clients` of each row's sender
    row_items: Tensor  # (R,) item index
    row_deltas: Tensor  # (R, D + 1)

    def select(self, keep: Tensor) -> ClientUploads:
        """Only the clients where `keep` (C,) is true."""
        position = torch.full((len(keep),), -1, dtype=torch.long)
        position[keep] = torch.arange(int(keep.sum()))
        rows = keep[self.row_owner]
        return ClientUploads(
            self.clients[keep],
            {k: v[keep] for k, v in self.dense.items()},
            self.weights[keep],
            position[self.row_owner[rows]],
            self.row_items[rows],
            self.row_deltas[rows],
        )

    def tensors(self) -> dict[str, Tensor]:
        """Flat name -> tensor (what a Flower silo sends); `from_tensors` inverts it."""
        fields = {"clients": self.clients, "weights": self.weights, "row_owner": self.row_owner}
        fields |= {"row_items": self.row_items, "row_deltas": self.row_deltas}
        return fields | {f"dense.{name}": value for name, value in self.dense.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> ClientUploads:
        dense = {name.removeprefix("dense."): value for name, value in tensors.items() if name.startswith("dense.")}
        return cls(
            tensors["clients"],
            dense,
            tensors["weights"],
            tensors["row_owner"],
            tensors["row_items"],
            tensors["row_deltas"],
        )

    @classmethod
    def concat(cls, parts: list[ClientUploads]) -> ClientUploads:
        """The uploads of several senders (silos) as one round's uploads."""
        offsets = torch.cumsum(torch.tensor([0] + [len(part.clients) for part in parts[:-1]]), 0).tolist()
        return cls(
            torch.cat([part.clients for part in parts]),
            {name: torch.cat([part.dense[name] for part in parts]) for name in parts[0].dense},
            torch.cat([part.weights for part in parts]),
            torch.cat([part.row_owner + offset for part, offset in zip(parts, offsets, strict=True)]),
            torch.cat([part.row_items for part in parts]),
            torch.cat([part.row_deltas for part in parts]),
        )

    def scaled(self, factors: Tensor) -> ClientUploads:
        """Each client's whole upload multiplied by its factor (C,)."""
        dense = {k: v * factors.view(-1, *[1] * (v.dim() - 1)) for k, v in self.dense.items()}
        return replace(self, dense=dense, row_deltas=self.row_deltas * factors[self.row_owner].unsqueeze(-1))

    def norms(self) -> Tensor:
        """(C,) L2 norm of each client's whole upload (dense and rows together)."""
        dense = flatten_updates(self.dense).pow(2).sum(1) if self.dense else torch.zeros(len(self.clients))
        rows = torch.zeros(len(self.clients)).index_add_(0, self.row_owner, self.row_deltas.pow(2).sum(1))
        return (dense + rows).sqrt()


def collect_uploads(parts: list[tuple[Tensor, LocalResult]], n_items: int) -> ClientUploads:
    """Per-client uploads from the chunks of a round (`parts`: (chunk client ids, result))."""
    clients = torch.cat([chunk_clients for chunk_clients, _ in parts])
    offsets = torch.cumsum(torch.tensor([0] + [len(c) for c, _ in parts[:-1]]), 0)
    keys, deltas = [], []
    for (chunk_clients, result), offset in zip(parts, offsets.tolist(), strict=True):
        keys.append(result.row_keys(torch.arange(len(chunk_clients)) + offset, n_items))
        deltas.append(result.row_delta[result.row_mask])
    keys, merged = sum_by_key(torch.cat(keys), torch.cat(deltas))  # merge a client's rows per item
    dense = {name: torch.cat([r.shared_delta[name] for _, r in parts]) for name in parts[0][1].shared_delta}
    weights = torch.cat([r.n_examples for _, r in parts])
    return ClientUploads(clients, dense, weights, keys // n_items, keys % n_items, merged)


def attack(uploads: ClientUploads, attackers: Tensor, mode: str, generator: torch.Generator) -> ClientUploads:
    """Replace the uploads of `attackers` (C,) bool by an attack (see `faults.corrupt`)."""
    dense = uploads.dense
    if dense:
        shapes = {k: tuple(v.shape[1:]) for k, v in dense.items()}
        dense = unflatten(corrupt(flatten_updates(dense), attackers, mode, generator), shapes)
    rows = corrupt(uploads.row_deltas, attackers[uploads.row_owner], mode, generator)
    return replace(uploads, dense=dense, row_deltas=rows)


def reject_non_finite(uploads: ClientUploads, round_index: int) -> tuple[ClientUploads, int]:
    """Drop uploads with a NaN or infinite value, logging which; returns (kept, number rejected)."""
    finite = (
        finite_clients(flatten_updates(uploads.dense))
        if uploads.dense
        else torch.ones(len(uploads.clients), dtype=torch.bool)
    )
    bad_rows = ~torch.isfinite(uploads.row_deltas).all(1)
    finite[uploads.row_owner[bad_rows]] = False
    rejected = int((~finite).sum())
    if rejected:
        log.warning(
            "round %d: rejected %d non-finite update(s) from clients %s",
            round_index,
            rejected,
            uploads.clients[~finite].tolist()[:10],
        )
    return uploads.select(finite), rejected


def bound_uploads(uploads: ClientUploads, defense: Defense) -> ClientUploads:
    """Each upload scaled to the norm bound, then to DP's clip (where they are set)."""
    if defense.robust.norm_bound > 0:
        uploads = uploads.scaled(clip_factors(uploads.norms(), defense.robust.norm_bound))
    if defense.noise_multiplier > 0:
        uploads = uploads.scaled(clip_factors(uploads.norms(), defense.privacy.dp_clip))
    return uploads


@dataclass
class FedAvgSums:
    """What a FedAvg server adds up from bounded uploads (the only thing secure aggregation reveals)."""

    total_weight: Tensor  # ()
    weighted: dict[str, Tensor]  # name -> sum of weight * dense delta
    row_sum: Tensor  # (I, D + 1)
    senders: Tensor  # (I,) clients that sent each item's row
    clients: int  # uploads added


def aggregate_defended(
    uploads: ClientUploads,
    defense: Defense,
    n_items: int,
    expected_clients: float,
    generator: torch.Generator,
    round_key: int,
    row_average: str = "senders",
) -> tuple[dict[str, Tensor], Tensor]:
    """(mean shared deltas, item-row update) from per-client uploads under `defense`.

    Args:
        expected_clients: DP's fixed denominator (clients sampled per round), so the noise scale
            does not depend on who took part.
    """
    robust = defense.robust
    uploads = bound_uploads(uploads, defense)
    if robust.aggregator != "fedavg":
        combine = coordinate_median if robust.aggregator == "median" else (lambda s: trimmed_mean(s, robust.trim))
        delta = {k: combine(v) for k, v in uploads.dense.items()}
        rows = robust_row_aggregate(
            uploads.row_items,
            uploads.row_deltas,
            uploads.clients[uploads.row_owner],
            n_items,
            robust.aggregator,
            robust.trim,
        )
        return delta, rows
    if defense.privacy.secure_agg:
        dense_shapes = {name: tuple(value.shape[1:]) for name, value in uploads.dense.items()}
        layout = secure_layout(dense_shapes, n_items, uploads.row_deltas.shape[-1])
        total = masked_upload_total(uploads, defense, n_items, round_key, uploads.clients)
        sums = unmasked_sums(total, layout, len(uploads.clients))
    else:
        sums = fedavg_sums(uploads, defense, n_items)
    return fedavg_from_sums(sums, defense, expected_clients, generator, row_average)


def fedavg_from_sums(
    sums: FedAvgSums, defense: Defense, expected_clients: float, generator: torch.Generator, row_average: str
) -> tuple[dict[str, Tensor], Tensor]:
    """(mean shared deltas, item-row update) from the sums: weighted means, or under DP the
    Gaussian mechanism on the sums and a fixed denominator."""
    if defense.noise_multiplier > 0:
        parts = [*sums.weighted.values(), sums.row_sum]
        noisy = add_gaussian_noise(
            torch.cat([p.flatten() for p in parts]), defense.noise_multiplier, defense.privacy.dp_clip, generator
        )
        pieces = torch.split(noisy, [p.numel() for p in parts])
        delta = {
            k: piece.view_as(v) / expected_clients for (k, v), piece in zip(sums.weighted.items(), pieces, strict=False)
        }
        return delta, pieces[-1].view_as(sums.row_sum) / expected_clients
    delta = {k: v / sums.total_weight.clamp_min(1e-12) for k, v in sums.weighted.items()}
    return delta, average_rows(sums.row_sum, sums.senders, sums.clients, row_average)


def expected_clients(client_fraction: float, n_users: int) -> float:
    """DP's fixed denominator: the clients a round samples (at least one)."""
    return max(1.0, client_fraction * n_users)


def _weighted_dense(uploads: ClientUploads, weights: Tensor) -> dict[str, Tensor]:
    """Each client's dense deltas times its weight (C, ...)."""
    return {k: v * weights.view(-1, *[1] * (v.dim() - 1)) for k, v in uploads.dense.items()}


def _weights(uploads: ClientUploads, defense: Defense) -> Tensor:
    """Each upload's FedAvg weight: its examples, or 1 under DP (DP-FedAvg weighs clients equally)."""
    return torch.ones_like(uploads.weights) if defense.noise_multiplier > 0 else uploads.weights


def fedavg_sums(uploads: ClientUploads, defense: Defense, n_items: int) -> FedAvgSums:
    """The sums of bounded uploads, added in the clear."""
    weights = _weights(uploads, defense)
    dense = {k: v.sum(0) for k, v in _weighted_dense(uploads, weights).items()}
    row_sum = torch.zeros(n_items, uploads.row_deltas.shape[-1]).index_add_(0, uploads.row_items, uploads.row_deltas)
    senders = torch.bincount(uploads.row_items, minlength=n_items).float()
    return FedAvgSums(weights.sum(), dense, row_sum, senders, len(uploads.clients))


def secure_layout(dense_shapes: dict[str, tuple[int, ...]], n_items: int, row_width: int) -> dict[str, tuple[int, ...]]:
    """The per-client vector that secure aggregation masks: dense deltas, weight, rows (I, D + 1), senders."""
    return {**dense_shapes, "weight": (1,), "rows": (n_items, row_width), "senders": (n_items,)}


def secure_vectors(uploads: ClientUploads, defense: Defense, n_items: int) -> Tensor:
    """(C, P) float64: each client's upload as one dense vector of the `secure_layout` (dense
    deltas times weight, weight, its rows over the whole catalogue, which items it sent): what
    secure aggregation adds up. Every client uploads I * (D + 2) values."""
    weights = _weights(uploads, defense)
    dense = _weighted_dense(uploads, weights)
    n_clients = len(uploads.clients)
    index = (uploads.row_owner, uploads.row_items)
    rows = torch.zeros(n_clients, n_items, uploads.row_deltas.shape[-1]).index_put_(
        index, uploads.row_deltas, accumulate=True
    )
    sent = torch.zeros(n_clients, n_items).index_put_(index, torch.ones(len(uploads.row_items)), accumulate=True)
    parts = {**dense, "weight": weights.view(-1, 1), "rows": rows, "senders": sent.clamp(max=1.0)}
    return flatten_updates(parts).double()


def fixed_point_sum(uploads: ClientUploads, defense: Defense, n_items: int) -> np.ndarray:
    """(P,) uint64: the sum over clients of their `secure_vectors` in fixed point (modulo 2^64),
    exactly as summing the encoded vectors, without forming a client's dense I x (D + 1) rows."""
    weights = _weights(uploads, defense)
    dense = _weighted_dense(uploads, weights)
    pieces = [np.add.reduce(encode_fixed(flatten_updates(dense)), axis=0, dtype=np.uint64)] if dense else []
    pieces.append(np.add.reduce(encode_fixed(weights.view(-1, 1).double()), axis=0, dtype=np.uint64))
    rows = np.zeros((n_items, uploads.row_deltas.shape[-1]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(rows, uploads.row_items.numpy(), encode_fixed(uploads.row_deltas.double()))
    senders = np.bincount(uploads.row_items.numpy(), minlength=n_items).astype(np.uint64) * np.uint64(SCALE)
    return np.concatenate([*pieces, rows.reshape(-1), senders])


def masked_upload_total(
    uploads: ClientUploads, defense: Defense, n_items: int, round_key: int, cohort: Tensor | np.ndarray
) -> Tensor:
    """(P,) int64: the sum of these clients' pairwise-masked `secure_vectors`. Masks cancel only
    over the whole `cohort`, so a part of it (a silo's clients) reveals nothing alone; masking is
    O(C log C * P) (SecAgg+-style sparse pairing)."""
    vectors = secure_vectors(uploads, defense, n_items)
    return masked_total(mask_updates(vectors, uploads.clients, round_key, cohort))  # (C, P) on the wire


def unmasked_sums(total: Tensor, layout: dict[str, tuple[int, ...]], n_clients: int) -> FedAvgSums:
    """The sums from the masked total (P,) int64 of a whole cohort (its masks cancel)."""
    summed = unflatten(unmask_sum(total.unsqueeze(0)).float(), layout)
    dense = {name: summed[name] for name in layout if name not in ("weight", "rows", "senders")}
    return FedAvgSums(summed["weight"].squeeze(), dense, summed["rows"], summed["senders"], n_clients)
