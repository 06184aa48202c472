import numpy as np
import pytest
import torch

from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.local.batches import NO_EVENT, build_round_examples, pad_chunks, round_key
from mmfedrec.federation.local.history import (
    NO_HISTORY,
    RECENCY_DECAY,
    EventContexts,
    history_context,
    preceding_items,
    pseudo_history_table,
    recent_items,
    with_pseudo_history,
)
from mmfedrec.federation.models import build_model
from tests.federation.helpers import planted_split
from tests.federation.test_simulation import make_simulation


def test_preceding_items_stay_within_each_users_past() -> None:
    indptr = np.array([0, 3, 5])
    items = np.array([10, 11, 12, 20, 21])  # user 0: 10, 11, 12; user 1: 20, 21 (time order)
    owners = np.array([0, 0, 1, 1])
    index = np.array([0, 2, 3, 4])
    expected = [[NO_HISTORY, NO_HISTORY], [11, 10], [NO_HISTORY, NO_HISTORY], [20, NO_HISTORY]]
    np.testing.assert_array_equal(preceding_items(indptr, items, owners, index, 2), expected)


def test_each_example_names_its_training_event() -> None:
    split = planted_split()
    indptr, items = split.train_csr()
    clients = np.arange(split.n_users)
    examples = build_round_examples(clients, indptr, items, split.n_items, 4, round_key(0, 1))
    owner = clients[np.repeat(np.arange(len(clients)), examples.counts)]
    np.testing.assert_array_equal(items[examples.events], examples.positives)
    assert ((examples.events >= indptr[owner]) & (examples.events < indptr[owner + 1])).all()
    chunk = pad_chunks(examples, 1 << 12)[0]
    assert (chunk.events[chunk.weights == 0] == NO_EVENT).all()


def test_event_contexts_equal_the_weighted_mean_of_the_items_before_each_event() -> None:
    split = planted_split()
    indptr, items = split.train_csr()
    table = torch.randn(split.n_items, 9)
    contexts = EventContexts(indptr, items, split.n_items, 3).contexts(table)
    owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
    history = preceding_items(indptr, items, owners, np.arange(len(items)), 3)
    torch.testing.assert_close(contexts[:-1], history_context(table, history))
    assert (history == NO_HISTORY).all(-1).any()  # first events have no past: zero context
    torch.testing.assert_close(contexts[NO_EVENT], torch.zeros(8))


def test_ranking_reads_the_latest_items_and_the_validation_item_at_test_time() -> None:
    split = planted_split()
    indptr, items = split.train_csr()
    valid = recent_items(split, 2, "valid")
    test = recent_items(split, 2, "test")
    for user in np.flatnonzero(split.valid_items >= 0)[:10]:
        last_two = list(items[indptr[user] : indptr[user + 1]][-2:][::-1])
        assert list(valid[user]) == last_two
        assert list(test[user]) == [split.valid_items[user], last_two[0]]


def test_history_context_weighs_recent_items_more_and_drops_the_bias() -> None:
    table = torch.arange(12.0).view(4, 3)  # 4 items, D = 2, last column = bias
    history = np.array([[0, 2], [3, NO_HISTORY], [NO_HISTORY, NO_HISTORY]])
    decay = RECENCY_DECAY  # item 2 is one step older than item 0
    expected = torch.tensor([[(0 + decay * 6) / (1 + decay), (1 + decay * 7) / (1 + decay)], [9.0, 10.0], [0.0, 0.0]])
    torch.testing.assert_close(history_context(table, history), expected)


def test_a_zero_context_gives_the_model_without_history() -> None:
    plain = build_model("moe", 8, n_experts=3)
    with_history = build_model("moe", 8, n_experts=3, history=4)
    generator = torch.Generator().manual_seed(0)
    shared = with_history.init_shared(generator)
    private = with_history.init_private(5, generator)
    context = torch.randn(5, 8)
    per_client = with_history.client_vector(private, shared, context)
    per_example = with_history.client_vector(private, shared, context.unsqueeze(1).expand(5, 3, 8))
    torch.testing.assert_close(per_example, per_client.unsqueeze(1).expand(5, 3, 9))
    zero = with_history.client_vector(private, shared, torch.zeros(5, 8))
    torch.testing.assert_close(zero, plain.client_vector(private, shared))
    assert not torch.allclose(per_client, zero)


def test_only_the_mixture_of_experts_model_reads_a_history() -> None:
    with pytest.raises(Exception, match="mixture-of-experts model, not mf"):
        build_model("mf", 8, history=3)


def test_batched_engine_matches_the_loop_with_history() -> None:
    # SGD: Adam's first steps turn float-order noise in near-zero gate gradients into ~1e-5
    # differences once the context map has moved (measured: SGD agrees to 4e-9).
    engines = {name: make_simulation(name, history=3, optimizer="sgd") for name in ("batched", "loop")}
    for simulation in engines.values():
        for round_index in range(2):
            simulation.run_round(round_index)
    batched, loop = engines["batched"], engines["loop"]
    for name, tensor in batched.state().items():
        torch.testing.assert_close(tensor, loop.state()[name], atol=1e-6, rtol=1e-5, msg=name)
    for stage in ("valid", "test"):
        scores = evaluate(batched.scorer(stage), batched.split, stage)["sampled"]["ndcg@10"]
        assert scores == pytest.approx(evaluate(loop.scorer(stage), loop.split, stage)["sampled"]["ndcg@10"], abs=1e-6)


def test_pseudo_history_fills_only_the_empty_older_slots() -> None:
    history = np.array([[5, 6, NO_HISTORY, NO_HISTORY], [1, 2, 3, 4], [NO_HISTORY] * 4])
    table = pseudo_history_table(np.array([2, 0, 0, 2]), np.array([30, 10, 11, 31]), n_users=3)
    np.testing.assert_array_equal(table, [[10, 11], [NO_HISTORY, NO_HISTORY], [30, 31]])
    filled = with_pseudo_history(history, np.array([0, 1, 2]), table)
    np.testing.assert_array_equal(filled, [[5, 6, 10, 11], [1, 2, 3, 4], [30, 31, NO_HISTORY, NO_HISTORY]])


@pytest.mark.parametrize("pseudo_as", ["history", "positives", "both"])
def test_pseudo_history_enters_contexts_and_positives_enter_training(pseudo_as: str) -> None:
    simulation = make_simulation("batched", history=40, pseudo_as=pseudo_as)  # longer than any user's past
    plain = simulation.scorer("test")(np.arange(4))
    user, items = 2, np.array([7, 8, 9, 10, 11])
    simulation.pseudo = (np.full(5, user), items, np.full(5, 0.5, np.float32))
    scores = simulation.scorer("test")(np.arange(4))
    reads_pseudo = pseudo_as != "positives"
    assert np.allclose(scores[[0, 1, 3]], plain[[0, 1, 3]])
    assert np.allclose(scores[user], plain[user]) != reads_pseudo
    examples = simulation._pseudo_positives()
    assert (examples is None) == (pseudo_as == "history")
