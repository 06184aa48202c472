"""What a client's upload contains: shared deltas, touched item vectors, routed mass, a count.
Never its user embedding, its personalised gate, or its interaction list."""

import numpy as np
import pytest
import torch

from mmfedrec.config import LocalConfig
from mmfedrec.federation.local.batches import build_round_examples, pad_chunks, round_key
from mmfedrec.federation.local.history import EventContexts
from mmfedrec.federation.local.training import local_train
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.federation.privacy.comm import client_upload, message_nbytes, upload_nbytes
from tests.federation.helpers import planted_split


@pytest.mark.parametrize("history", [0, 3])
def test_an_upload_holds_no_private_state_and_its_bytes_are_counted(history: int) -> None:
    split = planted_split()
    model = build_model("moe", 16, n_experts=3, history=history)
    generator = torch.Generator().manual_seed(0)
    shared, private = model.init_shared(generator), model.init_private(split.n_users, generator)
    tower = ItemTower(split.n_items, 16, generator=generator)
    indptr, items = split.train_csr()
    examples = build_round_examples(np.arange(split.n_users), indptr, items, split.n_items, 4, round_key(0, 1))
    chunk = pad_chunks(examples, max_cells=512)[0]
    table = tower().detach()
    event_contexts = EventContexts.for_model(model, indptr, items, split.n_items)  # the history stays local
    contexts = None if event_contexts is None else event_contexts.contexts(table)
    chunk_private = {k: v[chunk.clients] for k, v in private.items()}
    result = local_train(model, shared, chunk_private, table, chunk, LocalConfig(), contexts=contexts)
    bytes_per_client = upload_nbytes(result, result.touched_items(split.n_items))
    for k, client in enumerate(chunk.clients.tolist()):
        message = client_upload(result, k)
        shared_names = {"shared.experts.weight", "shared.experts.bias"} | (
            {"shared.context.weight"} if history else set()
        )
        assert set(message) == shared_names | {"items.index", "items.delta", "routed_mass", "n_examples"}
        assert not any("user" in name or "private" in name for name in message)
        user_vector, gate = result.private["user"][k], result.private["router.private.weight"][k]
        for tensor in message.values():
            flat = tensor.flatten().float()
            for secret in (user_vector, gate.flatten()):  # no window of the private tensors is sent
                windows = flat.unfold(0, len(secret), 1) if len(flat) >= len(secret) else flat[:0].view(0, len(secret))
                assert not torch.isclose(windows, secret).all(1).any()
        touched = set(message["items.index"].tolist())
        positives = set(items[indptr[client] : indptr[client + 1]].tolist())
        assert positives < touched  # the touched set mixes in sampled negatives: no plain interaction list
        assert message_nbytes(message) == int(bytes_per_client[k])
