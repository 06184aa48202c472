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

import torch
from torch import Tensor

from mmfedrec.config.tree import PrivacyConfig, RobustConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation.faults import corrupt, finite_clients
from mmfedrec.federation.aggregation.robust import coordinate_median, robust_row_aggregate, trimmed_mean
from mmfedrec.federation.aggregation.sums import average_rows
from mmfedrec.federation.local.training import LocalResult, sum_by_key
from mmfedrec.federation.privacy.dp import add_gaussian_noise, clip_factors, flatten_updates, unflatten
from mmfedrec.federation.privacy.secure_agg import mask_updates, masked_total, unmask_sum

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
    if robust.norm_bound > 0:
        uploads = uploads.scaled(clip_factors(uploads.norms(), robust.norm_bound))
    dp = defense.noise_multiplier > 0
    if dp:
        uploads = uploads.scaled(clip_factors(uploads.norms(), defense.privacy.dp_clip))
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
    weights = torch.ones_like(uploads.weights) if dp else uploads.weights  # DP-FedAvg weighs clients equally
    total_weight, weighted, row_sum, senders = _sums(uploads, weights, n_items, defense.privacy.secure_agg, round_key)
    if dp:  # Gaussian mechanism on the sums, then a fixed denominator
        parts = [*weighted.values(), row_sum]
        noisy = add_gaussian_noise(
            torch.cat([p.flatten() for p in parts]), defense.noise_multiplier, defense.privacy.dp_clip, generator
        )
        pieces = torch.split(noisy, [p.numel() for p in parts])
        delta = {
            k: piece.view_as(v) / expected_clients for (k, v), piece in zip(weighted.items(), pieces, strict=False)
        }
        return delta, pieces[-1].view_as(row_sum) / expected_clients
    delta = {k: v / total_weight.clamp_min(1e-12) for k, v in weighted.items()}
    return delta, average_rows(row_sum, senders, len(uploads.clients), row_average)


def _sums(
    uploads: ClientUploads, weights: Tensor, n_items: int, secure: bool, round_key: int
) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
    """(sum of weights, sum of weighted dense deltas, sum of row updates (I, D+1), senders per item)."""
    dense = {k: v * weights.view(-1, *[1] * (v.dim() - 1)) for k, v in uploads.dense.items()}
    if secure:
        return _secure_sums(uploads, dense, weights, n_items, round_key)
    row_sum = torch.zeros(n_items, uploads.row_deltas.shape[-1]).index_add_(0, uploads.row_items, uploads.row_deltas)
    senders = torch.bincount(uploads.row_items, minlength=n_items).float()
    return weights.sum(), {k: v.sum(0) for k, v in dense.items()}, row_sum, senders


def _secure_sums(
    uploads: ClientUploads, dense: dict[str, Tensor], weights: Tensor, n_items: int, round_key: int
) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
    """The same sums, from dense pairwise-masked uploads: the server learns the sums and nothing
    about a single client, not even which items it touched. Cost: every client uploads
    I * (D + 2) values, and masking is O(C log C * I * D) (SecAgg+-style sparse pairing)."""
    n_clients = len(uploads.clients)
    index = (uploads.row_owner, uploads.row_items)
    rows = torch.zeros(n_clients, n_items, uploads.row_deltas.shape[-1]).index_put_(
        index, uploads.row_deltas, accumulate=True
    )
    sent = torch.zeros(n_clients, n_items).index_put_(index, torch.ones(len(uploads.row_items)), accumulate=True)
    parts = {**dense, "weight": weights.view(-1, 1), "rows": rows, "senders": sent.clamp(max=1.0)}
    masked = mask_updates(
        flatten_updates(parts).double(), uploads.clients, round_key
    )  # (C, P) what the server receives
    total = unmask_sum(masked_total(masked).unsqueeze(0)).float()
    summed = unflatten(total, {k: tuple(v.shape[1:]) for k, v in parts.items()})
    return summed["weight"].squeeze(), {k: summed[k] for k in dense}, summed["rows"], summed["senders"]
