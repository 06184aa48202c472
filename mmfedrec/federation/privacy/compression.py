"""Upload compression with error feedback: top-k sparsification and 8-bit quantization.

A client adds what it failed to send last time (its residual) to this round's update, sends a
compressed version and keeps the new residual (Seide et al., 2014; Stich et al., 2018, "Sparsified
SGD with memory"). Nothing is lost, only delayed, which is why aggressive compression still trains.

- Dense shared tensors (experts, MLPs): top-k keeps each client's `compress_topk` fraction of entries with
  the largest magnitude, sent as (int32 index, value); 8-bit sends int8 values with one float32
  scale per tensor.
- Item rows (one merged update per touched item): top-k keeps each client's `compress_topk` fraction of
  rows with the largest norm; 8-bit sends each row as int8 with its own float32 scale.

Residuals are private client state (like the user vector): a dense (clients, shared size) table
and a sparse set of (client, item) rows. The byte count is that of the compressed message
(`compressed_message` builds it; a test checks the two agree).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mmfedrec.config.tree import CompressionConfig
from mmfedrec.federation.local.training import LocalResult, sum_by_key
from mmfedrec.federation.privacy.comm import ITEM_INDEX_BYTES, counts_nbytes

ENTRY_INDEX_BYTES = 4  # int32 index of a kept shared entry
SCALE_BYTES = 4  # one float32 scale per quantized tensor or row


def quantize_int8(values: Tensor) -> tuple[Tensor, Tensor]:
    """(N, M) float -> (int8 (N, M), float32 scale (N, 1)), symmetric, round to nearest."""
    scale = values.abs().amax(dim=-1, keepdim=True) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(values / safe).clamp_(-127, 127).to(torch.int8), scale


def dequantize_int8(quantized: Tensor, scale: Tensor) -> Tensor:
    return quantized.float() * scale


def topk_mask(magnitude: Tensor, fraction: float) -> Tensor:
    """(C, N) -> (C, N) bool: each row's ceil(fraction * N) largest entries."""
    k = max(1, int(-(-fraction * magnitude.shape[1] // 1)))
    mask = torch.zeros_like(magnitude, dtype=torch.bool)
    return mask.scatter_(1, magnitude.topk(min(k, magnitude.shape[1]), dim=1).indices, True)


def ranked_within_groups(groups: Tensor, magnitude: Tensor) -> Tensor:
    """(R,) rank of each entry within its group by decreasing magnitude (0 = largest)."""
    order = torch.argsort(magnitude, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]  # by group, largest first inside
    sorted_groups = groups[order]
    starts = torch.searchsorted(sorted_groups, sorted_groups, side="left")
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order)) - starts
    return ranks


class ErrorFeedbackCompressor:
    """Compresses the uploads of a run's clients, keeping each client's residual between rounds."""

    def __init__(self, config: CompressionConfig, n_clients: int, n_items: int) -> None:
        self.config = config
        self.n_clients, self.n_items = n_clients, n_items
        self.shared_residual: Tensor | None = None  # (U, S), allocated on first use
        self.row_keys = torch.zeros(0, dtype=torch.long)  # (R,) client * n_items + item
        self.row_values = torch.zeros(0, 0)  # (R, D + 1)

    def compress(self, result: LocalResult, clients: Tensor) -> tuple[LocalResult, Tensor]:
        """(the result as the server reconstructs it, (C,) bytes each client sends)."""
        shared, shared_bytes = self._compress_shared(result.shared_delta, clients)
        owner, items, values = self._compress_rows(result, clients)
        n_clients = len(clients)
        row_items, row_mask, row_delta = _pad_rows(owner, items, values, n_clients)
        sent_rows = torch.bincount(owner, minlength=n_clients)
        row_bytes = ITEM_INDEX_BYTES + values.shape[-1] * self.config.value_bytes
        row_bytes += SCALE_BYTES if self.config.compress_bits == 8 else 0
        compressed = replace(result, shared_delta=shared, row_items=row_items, row_mask=row_mask, row_updates=row_delta)
        return compressed, shared_bytes + sent_rows * row_bytes + counts_nbytes(result, self.n_items)

    def _compress_shared(self, deltas: dict[str, Tensor], clients: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        if not deltas:
            return deltas, torch.zeros(len(clients), dtype=torch.long)
        flat = torch.cat([d.flatten(1) for d in deltas.values()], dim=1)  # (C, S)
        if self.shared_residual is None:
            self.shared_residual = torch.zeros(self.n_clients, flat.shape[1])
        update = flat + self.shared_residual[clients]
        keep = topk_mask(update.abs(), self.config.compress_topk) if self.config.compress_topk < 1.0 else None
        sent = update if keep is None else update * keep
        widths = [delta[0].numel() for delta in deltas.values()]
        if self.config.compress_bits == 8:  # one scale per tensor and client
            sent = torch.cat([dequantize_int8(*quantize_int8(piece)) for piece in sent.split(widths, dim=1)], dim=1)
        self.shared_residual[clients] = update - sent
        n_sent = torch.full((len(clients),), flat.shape[1]) if keep is None else (sent != 0).sum(1)
        per_entry = self.config.value_bytes + (ENTRY_INDEX_BYTES if keep is not None else 0)
        scales = len(deltas) * SCALE_BYTES if self.config.compress_bits == 8 else 0
        pieces = sent.split(widths, dim=1)
        unflat = {name: piece.reshape(delta.shape) for (name, delta), piece in zip(deltas.items(), pieces)}
        return unflat, n_sent * per_entry + scales

    def _compress_rows(self, result: LocalResult, clients: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Kept rows as (owner position in chunk, item, reconstructed value), residual updated."""
        n_items = self.n_items
        keys, values = result.row_keys(clients, n_items), result.row_delta[result.row_mask]
        if self.row_values.shape[1] != values.shape[1]:
            self.row_values = torch.zeros(0, values.shape[1])
        mine = torch.isin(self.row_keys // n_items, clients)  # residual rows of this chunk's clients
        keys = torch.cat([keys, self.row_keys[mine]])
        values = torch.cat([values, self.row_values[mine]])
        self.row_keys, self.row_values = self.row_keys[~mine], self.row_values[~mine]
        keys, update = sum_by_key(keys, values)  # one row per (client, item)
        position = torch.full((self.n_clients,), -1, dtype=torch.long)
        position[clients] = torch.arange(len(clients))
        owner = position[keys // n_items]  # (R,) the sender's position in the chunk
        keep = torch.ones(len(keys), dtype=torch.bool)
        if self.config.compress_topk < 1.0:
            counts = torch.bincount(owner, minlength=len(clients))
            quota = torch.ceil(self.config.compress_topk * counts.double()).long()
            keep = ranked_within_groups(owner, update.norm(dim=1)) < quota[owner]
        sent = torch.zeros_like(update)
        kept = update[keep]
        sent[keep] = dequantize_int8(*quantize_int8(kept)) if self.config.compress_bits == 8 else kept
        residual = update - sent
        carry = residual.abs().amax(dim=1) > 0  # exact zeros need no memory
        self.row_keys = torch.cat([self.row_keys, keys[carry]])
        self.row_values = torch.cat([self.row_values, residual[carry]])
        return owner[keep], keys[keep] % n_items, sent[keep]

    def state(self) -> dict[str, Tensor]:
        tensors = {"ef.row_keys": self.row_keys, "ef.row_values": self.row_values}
        if self.shared_residual is not None:
            tensors["ef.shared"] = self.shared_residual
        return tensors

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        self.row_keys, self.row_values = tensors["ef.row_keys"].clone(), tensors["ef.row_values"].clone()
        self.shared_residual = tensors["ef.shared"].clone() if "ef.shared" in tensors else None


def _pad_rows(owner: Tensor, items: Tensor, values: Tensor, n_clients: int) -> tuple[Tensor, Tensor, Tensor]:
    """Flat kept rows -> (C, P) items, (C, P) mask, (C, P, D + 1) values, P = most rows of a client."""
    counts = torch.bincount(owner, minlength=n_clients)
    width = max(1, int(counts.max())) if len(owner) else 1
    order = torch.argsort(owner, stable=True)
    owner, items, values = owner[order], items[order], values[order]
    slot = torch.arange(len(owner)) - (torch.cumsum(counts, 0) - counts)[owner]
    row_items = torch.zeros(n_clients, width, dtype=torch.long)
    row_mask = torch.zeros(n_clients, width, dtype=torch.bool)
    row_delta = torch.zeros(n_clients, width, values.shape[-1])
    row_items[owner, slot], row_mask[owner, slot], row_delta[owner, slot] = items, True, values
    return row_items, row_mask, row_delta


def compressed_message(result: LocalResult, k: int, config: CompressionConfig) -> dict[str, Tensor]:
    """The exact message client k of a compressed chunk sends (what the byte count counts)."""
    message: dict[str, Tensor] = {}
    for name, delta in result.shared_delta.items():
        values = delta[k].flatten()
        if config.compress_topk < 1.0:  # entries that were dropped (or quantized to zero) are not sent
            index = torch.nonzero(values).flatten().to(torch.int32)
            message[f"shared.{name}.index"] = index
            values = values[index.long()]
        if config.compress_bits == 8:
            quantized, scale = quantize_int8(delta[k].flatten().unsqueeze(0))
            values = quantized[0][index.long()] if config.compress_topk < 1.0 else quantized[0]
            message[f"shared.{name}.scale"] = scale.flatten()
        message[f"shared.{name}"] = values
    mask = result.row_mask[k]
    rows = result.row_delta[k][mask]
    message["items.index"] = result.row_items[k][mask]
    if config.compress_bits == 8:
        message["items.delta"], scale = quantize_int8(rows)
        message["items.scale"] = scale.flatten()
    else:
        message["items.delta"] = rows
    if result.routed_mass is not None:
        message["routed_mass"] = result.routed_mass[k]
    message["n_examples"] = result.n_examples[k : k + 1].to(torch.int64)
    message["items.positive"] = result.positive_items(k)
    return message
