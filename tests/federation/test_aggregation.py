import torch

from mmfedrec.federation.aggregation.sums import UpdateSums, finalize, update_sums
from mmfedrec.federation.local.training import LocalResult


def result(deltas: list[float], mass: list[list[float]], n: list[float], items: list[int]) -> LocalResult:
    n_clients = len(deltas)
    return LocalResult(
        private={},
        shared_delta={
            "experts.weight": torch.tensor(deltas).view(n_clients, 1).repeat(1, 2),  # (C, K=2)
            "router.shared.bias": torch.tensor(deltas).view(n_clients, 1),
        },
        row_items=torch.tensor(items).view(n_clients, 1, 1),
        row_mask=torch.ones(n_clients, 1, 1, dtype=torch.bool),
        row_updates=torch.tensor(deltas).view(n_clients, 1, 1, 1),
        routed_mass=torch.tensor(mass),
        n_examples=torch.tensor(n),
        positives=torch.tensor(items).view(n_clients, 1),
    )


def test_expertwise_fedavg_and_item_rows_by_hand() -> None:
    chunk = result([1.0, 3.0], mass=[[3.0, 0.0], [1.0, 2.0]], n=[3.0, 3.0], items=[0, 0])
    delta, rows = finalize(update_sums(chunk, chunk.touched_items(2), n_items=2, expertwise=True))
    # expert 0: (3*1 + 1*3)/4 = 1.5; expert 1: only client 1 routed to it -> 3
    assert delta["experts.weight"].tolist() == [1.5, 3.0]
    assert delta["router.shared.bias"].tolist() == [2.0]  # example-weighted: (3*1 + 3*3)/6
    assert rows[:, 0].tolist() == [2.0, 0.0]  # item 0 averaged over its 2 senders, item 1 untouched


def test_sums_do_not_depend_on_how_clients_are_grouped() -> None:
    whole = result([1.0, 3.0, -2.0], mass=[[1.0, 0.0], [1.0, 2.0], [0.5, 0.5]], n=[2.0, 3.0, 1.0], items=[0, 1, 1])
    first = result([1.0, 3.0], mass=[[1.0, 0.0], [1.0, 2.0]], n=[2.0, 3.0], items=[0, 1])
    second = result([-2.0], mass=[[0.5, 0.5]], n=[1.0], items=[1])
    together = update_sums(whole, whole.touched_items(2), 2, True)
    added = update_sums(first, first.touched_items(2), 2, True) + update_sums(second, second.touched_items(2), 2, True)
    for name, tensor in together.tensors().items():
        torch.testing.assert_close(tensor, added.tensors()[name])
    roundtrip = UpdateSums.from_tensors(added.tensors())
    torch.testing.assert_close(finalize(roundtrip)[1], finalize(together)[1])


def test_item_rows_averaged_over_their_senders_or_over_every_client() -> None:
    chunk = result([1.0, 3.0, -2.0], mass=[[1.0, 0.0], [1.0, 2.0], [0.5, 0.5]], n=[2.0, 3.0, 1.0], items=[0, 0, 1])
    sums = update_sums(chunk, chunk.touched_items(3), n_items=3, expertwise=True)
    assert finalize(sums)[1][:, 0].tolist() == [2.0, -2.0, 0.0]  # FedMF: item 0 by its 2 senders, item 1 by 1
    by_clients = finalize(sums, row_average="clients")[1][:, 0]  # FedAvg over the table: all 3 clients
    torch.testing.assert_close(by_clients, torch.tensor([4.0 / 3, -2.0 / 3, 0.0]))


def test_positive_senders_count_each_client_once_and_skip_negatives_and_padding() -> None:
    items = torch.tensor([[[0, 1], [0, 2], [2, 1]], [[1, 0], [2, 0], [1, 1]]])  # (C=2, L=3, 1 + 1 negative)
    mask = torch.ones_like(items, dtype=torch.bool)
    mask[1, 2] = False  # client 1's third example is padding
    positives = torch.where(mask[..., 0], items[..., 0], -1)
    chunk = LocalResult({}, {}, items, mask, torch.zeros(2, 3, 2, 1), None, torch.tensor([3.0, 2.0]), positives)
    # client 0 holds items 0 (twice) and 2 as positives; client 1 holds items 1 and 2
    assert chunk.positive_senders(4).tolist() == [1.0, 1.0, 2.0, 0.0]
    assert chunk.held_items(4).sum(1).tolist() == [2, 2] and chunk.positive_items(0).tolist() == [0, 2]
