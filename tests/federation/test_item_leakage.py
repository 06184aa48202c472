"""What a curious server learns about a user's items from one upload, with and without defence.

Without defence a client uploads the item rows it touched: the touched set alone over-represents
its positives, and the rows' bias updates (up for positives, down for sampled negatives) give them
away almost exactly. Defence: the client densifies its row update over all items and secure-
aggregation masks it, so one upload is uniform noise; only the cohort's sum is usable.
"""

import math

import numpy as np
import torch

from mmfedrec.config import LocalConfig
from mmfedrec.federation.local.batches import build_round_examples, pad_chunks, round_key
from mmfedrec.federation.local.training import local_train
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.federation.privacy.secure_agg import mask_updates, unmask_sum
from tests.federation.helpers import planted_split

N_CLIENTS = 24


def one_round_uploads():
    """Train N_CLIENTS clients one local round; their positives and their sparse row uploads."""
    split = planted_split(seed=1)
    generator = torch.Generator().manual_seed(0)
    model = build_model("moe", 16, n_experts=3)
    tower = ItemTower(split.n_items, 16, generator=generator)
    shared, private = model.init_shared(generator), model.init_private(split.n_users, generator)
    indptr, train_items = split.train_csr()
    clients = np.arange(N_CLIENTS)
    key = round_key(0, 0)
    examples = build_round_examples(clients, indptr, train_items, split.n_items, 4, key)
    (chunk,) = pad_chunks(examples, 1 << 15)
    chunk_private = {k: v[chunk.clients] for k, v in private.items()}
    result = local_train(
        model, shared, chunk_private, tower().detach(), chunk, LocalConfig(lr=0.01, batch_size=8).resolved(dense=False)
    )
    positives = [set(train_items[indptr[c] : indptr[c + 1]].tolist()) for c in chunk.clients.tolist()]
    return split.n_items, chunk.clients, positives, result, key


def dense_rows(result, n_items: int) -> torch.Tensor:
    """(C, I, D + 1) each client's row update over all items (zero where untouched)."""
    n_clients, width = result.row_delta.shape[0], result.row_delta.shape[-1]
    dense = torch.zeros(n_clients, n_items, width)
    for k in range(n_clients):
        mask = result.row_mask[k]
        dense[k].index_add_(0, result.row_items[k][mask], result.row_delta[k][mask])
    return dense


def hits(scores: torch.Tensor, positives: set[int], candidates: torch.Tensor) -> int:
    """How many of the attacker's top-len(positives) candidate items are positives."""
    top = candidates[scores[candidates].argsort(descending=True)[: len(positives)]]
    return len(set(top.tolist()) & positives)


def test_sparse_uploads_reveal_the_users_items() -> None:
    n_items, _, positives, result, _ = one_round_uploads()
    dense = dense_rows(result, n_items)
    guessed = touched_hits = expected = 0.0
    for k, liked in enumerate(positives):
        touched = torch.unique(result.row_items[k][result.row_mask[k]])
        guessed += hits(dense[k, :, -1], liked, touched)  # bias updates: up for positives
        touched_hits += len(liked) * len(liked) / len(touched)  # a random guess among touched items
        expected += len(liked) * len(liked) / n_items  # a random guess among all items
    total = sum(len(liked) for liked in positives)
    assert guessed / total > 0.95
    assert touched_hits > 1.5 * expected  # even the sender set alone beats chance (4 negatives per positive)


def test_masked_dense_uploads_reveal_nothing_but_sum_exactly() -> None:
    n_items, clients, positives, result, key = one_round_uploads()
    dense = dense_rows(result, n_items)  # (C, I, D + 1)
    masked = mask_updates(dense.flatten(1), clients, key)  # what the server receives
    torch.testing.assert_close(unmask_sum(masked).view(n_items, -1).float(), dense.sum(0), atol=1e-5, rtol=0)
    seen = masked.view(len(clients), n_items, -1).double()
    assert (seen != 0).all()  # every item looks sent: the sender set is gone
    everything = torch.arange(n_items)
    guessed = sum(hits(seen[k, :, -1], liked, everything) for k, liked in enumerate(positives))
    rates = [len(liked) / n_items for liked in positives]
    expected = sum(len(liked) * p for liked, p in zip(positives, rates))
    spread = math.sqrt(sum(len(liked) * p * (1 - p) for liked, p in zip(positives, rates)))
    assert abs(guessed - expected) < 3 * spread  # within the binomial band of chance
