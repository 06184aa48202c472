import numpy as np

from mmfedrec.federation.local.batches import KnownPairs, build_round_examples, counter_hash, pad_chunks, round_key
from tests.federation.helpers import planted_split


def draw(split, clients: np.ndarray, key: int):
    indptr, items = split.train_csr()
    return build_round_examples(clients, indptr, items, split.n_items, 4, key)


def test_a_clients_examples_do_not_depend_on_who_else_is_drawn() -> None:
    split = planted_split()
    everyone = draw(split, np.arange(split.n_users), round_key(0, 1))
    alone = draw(split, np.array([7]), round_key(0, 1))
    span = slice(everyone.offsets[7], everyone.offsets[8])
    assert np.array_equal(everyone.positives[span], alone.positives)
    assert np.array_equal(everyone.negatives[span], alone.negatives)
    other_round = draw(split, np.array([7]), round_key(0, 2))
    assert not np.array_equal(other_round.negatives, alone.negatives)


def test_negatives_that_hit_training_items_are_masked() -> None:
    split = planted_split()
    examples = draw(split, np.arange(split.n_users), round_key(3, 1))
    indptr, items = split.train_csr()
    owners = np.repeat(examples.clients, examples.counts)
    for e in range(0, len(owners), 37):
        seen = set(items[indptr[owners[e]] : indptr[owners[e] + 1]].tolist())
        assert examples.negative_ok[e].tolist() == [n not in seen for n in examples.negatives[e].tolist()]


def test_chunks_cover_every_example_once_within_the_cell_budget() -> None:
    split = planted_split()
    examples = draw(split, np.arange(split.n_users), round_key(0, 1))
    chunks = pad_chunks(examples, max_cells=200)
    assert sorted(np.concatenate([c.rows for c in chunks]).tolist()) == list(range(split.n_users))
    assert sum(int((c.weights > 0).sum()) for c in chunks) == examples.counts.sum()
    assert all(c.weights.numel() <= 200 or c.weights.shape[0] == 1 for c in chunks)


def test_known_pairs_answer_alike_as_bitmap_and_sorted_keys(monkeypatch) -> None:
    split = planted_split()
    indptr, items = split.train_csr()
    users = np.arange(split.n_users)
    as_bitmap = KnownPairs.from_csr(indptr, items, users, split.n_items, split.n_users)
    monkeypatch.setattr("mmfedrec.federation.local.batches.BITMAP_MAX_PAIRS", 0)
    as_keys = KnownPairs.from_csr(indptr, items, users, split.n_items, split.n_users)
    assert as_bitmap.bitmap is not None and as_keys.bitmap is None
    queries = np.arange(split.n_users * split.n_items)
    assert np.array_equal(as_bitmap.contains(queries), as_keys.contains(queries))
    assert as_keys.contains(queries).sum() == len(items)


def test_pfedrec_sampling_also_avoids_held_out_items() -> None:
    split = planted_split()
    honest, pfedrec = KnownPairs.for_split(split), KnownPairs.for_split(split, include_heldout=True)
    users = split.evaluated_users("test")
    for held_out in (split.valid_items, split.test_items):
        keys = users * split.n_items + held_out[users]
        assert not honest.contains(keys).any()  # our protocol: a held-out item may be drawn as a negative
        assert pfedrec.contains(keys).all()
    train_keys = split.train_users * split.n_items + split.train_items
    assert honest.contains(train_keys).all() and pfedrec.contains(train_keys).all()


def test_counter_hash_extends_a_hash_of_leading_parts() -> None:
    clients, slots = np.arange(7, dtype=np.uint64), np.arange(1, 5, dtype=np.uint64)
    whole = counter_hash(11, clients[:, None], slots[None, :])
    assert np.array_equal(counter_hash(slots[None, :], start=counter_hash(11, clients)[:, None]), whole)
    assert len(np.unique(whole)) == whole.size
