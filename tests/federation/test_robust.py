import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation.robust import coordinate_median, robust_row_aggregate, trimmed_mean
from mmfedrec.federation.privacy.dp import clip_updates


def test_coordinate_median_by_hand() -> None:
    odd = torch.tensor([[1.0, 10.0], [3.0, -5.0], [100.0, 0.0]])
    torch.testing.assert_close(coordinate_median(odd), torch.tensor([3.0, 0.0]))
    even = torch.tensor([[1.0], [4.0], [2.0], [1000.0]])
    torch.testing.assert_close(coordinate_median(even), torch.tensor([3.0]))  # (2 + 4) / 2
    stacked = torch.arange(24.0).view(3, 2, 4)  # (C, ...) shapes are kept
    torch.testing.assert_close(coordinate_median(stacked), stacked[1])


def test_trimmed_mean_by_hand() -> None:
    values = torch.tensor([[-100.0], [1.0], [2.0], [3.0], [1e6]])
    torch.testing.assert_close(trimmed_mean(values, 0.2), torch.tensor([2.0]))  # drops one from each side
    torch.testing.assert_close(trimmed_mean(values, 0.1), values.mean(0))  # floor(0.5) = 0 dropped
    with pytest.raises(MmfedrecError, match="trim"):
        trimmed_mean(values, 0.5)


def test_one_attacker_cannot_move_the_robust_statistics_far() -> None:
    honest = torch.randn(9, 100, generator=torch.Generator().manual_seed(0)) * 0.1 + 1.0
    attacked = torch.cat([honest, torch.full((1, 100), -1e4)])
    assert (coordinate_median(attacked) - 1.0).abs().max() < 0.2
    assert (trimmed_mean(attacked, 0.1) - 1.0).abs().max() < 0.2
    assert (attacked.mean(0) - 1.0).abs().min() > 900  # the plain mean is destroyed


def test_clip_updates_scales_whole_client_updates() -> None:
    updates = {"a": torch.tensor([[3.0], [0.3]]), "b": torch.tensor([[0.0, 4.0], [0.0, 0.4]])}
    bounded = clip_updates(updates, 1.0)
    torch.testing.assert_close(bounded["a"], torch.tensor([[0.6], [0.3]]))  # client 0: norm 5 -> 1
    torch.testing.assert_close(bounded["b"], torch.tensor([[0.0, 0.8], [0.0, 0.4]]))  # client 1: kept


def test_row_median_and_trimmed_mean_by_hand() -> None:
    # item 0: clients 5 (sends it twice: 1 + 2 = 3), 6 (10), 7 (-4) -> median 3
    # item 2: client 6 only (7) -> 7; items 1 and 3: nobody -> 0
    items = torch.tensor([0, 0, 0, 2, 0])
    owners = torch.tensor([5, 5, 6, 6, 7])
    deltas = torch.tensor([[1.0, 0.0], [2.0, 1.0], [10.0, 2.0], [7.0, -7.0], [-4.0, 4.0]])
    median = robust_row_aggregate(items, deltas, owners, 4, "median")
    torch.testing.assert_close(median, torch.tensor([[3.0, 2.0], [0.0, 0.0], [7.0, -7.0], [0.0, 0.0]]))
    trimmed = robust_row_aggregate(items, deltas, owners, 4, "trimmed-mean", trim=0.34)  # floor(1.02) = 1 per side
    torch.testing.assert_close(trimmed, median)
    untrimmed = robust_row_aggregate(items, deltas, owners, 4, "trimmed-mean", trim=0.0)
    torch.testing.assert_close(untrimmed[0], torch.tensor([3.0, 7.0 / 3.0]))  # the plain mean over senders


def test_row_median_with_an_even_number_of_senders() -> None:
    items = torch.tensor([1, 1, 1, 1])
    owners = torch.tensor([0, 1, 2, 3])
    deltas = torch.tensor([[1.0], [2.0], [4.0], [100.0]])
    torch.testing.assert_close(robust_row_aggregate(items, deltas, owners, 2, "median"), torch.tensor([[0.0], [3.0]]))


def test_row_aggregation_matches_the_dense_statistics() -> None:
    generator = torch.Generator().manual_seed(2)
    dense = torch.randn(7, 5, 3, generator=generator)  # (C, I, D), every client sends every item
    owners = torch.arange(7).repeat_interleave(5)
    items = torch.arange(5).repeat(7)
    flat = dense.reshape(-1, 3)
    rows = robust_row_aggregate(items, flat, owners, 5, "median")
    torch.testing.assert_close(rows, coordinate_median(dense))
    rows = robust_row_aggregate(items, flat, owners, 5, "trimmed-mean", trim=0.2)
    torch.testing.assert_close(rows, trimmed_mean(dense, 0.2))


def test_row_aggregation_edge_cases() -> None:
    empty = robust_row_aggregate(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 4, "median"
    )
    assert torch.equal(empty, torch.zeros(4, 3))
    with pytest.raises(MmfedrecError, match="row aggregation"):
        robust_row_aggregate(torch.tensor([0]), torch.zeros(1, 1), torch.tensor([0]), 1, "mean")
