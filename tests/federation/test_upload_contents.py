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
from tests.federation.test_simulation import make_simulation


@pytest.mark.parametrize("history", [0, 3])
def test_what_the_engine_sends_holds_no_private_state_and_its_bytes_are_counted(history: int) -> None:
    """Every message a round of the in-process engine builds from the updates it aggregates."""
    simulation = make_simulation("batched", "moe", lr=0.05, history=history)
    sent: dict[int, dict[str, torch.Tensor]] = {}
    simulation.on_upload = lambda client, message: sent.setdefault(client, message)
    stats = simulation.run_round(1)
    assert len(sent) == stats.clients > 0
    indptr, items = simulation.split.train_csr()
    shared_names = {"shared.experts.weight", "shared.experts.bias"} | ({"shared.context.weight"} if history else set())
    for client, message in sent.items():
        expected = {"items.index", "items.delta", "items.positive", "routed_mass", "n_examples"}
        assert set(message) == shared_names | expected
        user_vector = simulation.private["user"][client]
        gate = simulation.private["router.private.weight"][client]
        for tensor in message.values():
            flat = tensor.flatten().float()
            for secret in (user_vector, gate.flatten()):  # no window of the private tensors is sent
                windows = flat.unfold(0, len(secret), 1) if len(flat) >= len(secret) else flat[:0].view(0, len(secret))
                assert not torch.isclose(windows, secret).all(1).any()
        touched = set(message["items.index"].tolist())
        positives = set(items[indptr[client] : indptr[client + 1]].tolist())
        assert positives < touched  # the touched rows mix in sampled negatives
        assert set(message["items.positive"].tolist()) == positives  # the evidence: what the bias signs tell
    counted = np.mean([message_nbytes(message) for message in sent.values()])
    assert counted == pytest.approx(stats.upload_bytes_per_client)  # the bytes reported are the bytes sent


@pytest.mark.parametrize("history", [0, 3])
def test_an_upload_message_is_counted_without_building_it(history: int) -> None:
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
    result = local_train(
        model, shared, chunk_private, table, chunk, LocalConfig().resolved(dense=False), contexts=contexts
    )
    bytes_per_client = upload_nbytes(result, result.touched_items(split.n_items))
    for k in range(len(chunk.clients)):
        assert message_nbytes(client_upload(result, k)) == int(bytes_per_client[k])
