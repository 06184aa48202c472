import time

import numpy as np
import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.privacy.secure_agg import dropout_correction, mask_updates, masked_total, unmask_sum


def updates(n_clients: int, n_values: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n_clients, n_values, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("neighbours", [None, 2, 100])  # logarithmic ring, the thinnest ring, complete graph
def test_masked_sum_equals_the_true_sum(neighbours: int | None) -> None:
    flat = updates(40, 500)
    ids = torch.arange(40) * 7 + 3
    masked = mask_updates(flat, ids, round_key=123, neighbours=neighbours)
    assert masked.dtype == torch.int64 and masked.shape == flat.shape
    assert (unmask_sum(masked) - flat.double().sum(0)).abs().max() < 1e-5


def test_masks_depend_on_client_ids_not_row_order() -> None:
    flat, ids = updates(6, 50), torch.tensor([9, 2, 5, 14, 0, 7])
    order = torch.randperm(6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mask_updates(flat, ids, 5)[order], mask_updates(flat[order], ids[order], 5))


def test_a_round_can_be_masked_chunk_by_chunk() -> None:
    flat, ids = updates(30, 200), torch.arange(30)
    totals = [masked_total(mask_updates(flat[part], ids[part], 77, cohort=ids)) for part in torch.arange(30).split(7)]
    assert (unmask_sum(torch.stack(totals)) - flat.double().sum(0)).abs().max() < 1e-5


def test_one_masked_update_reveals_nothing() -> None:
    flat, ids = updates(20, 20_000), torch.arange(20)
    masked = mask_updates(flat, ids, 99)[3].double()
    true = flat[3].double()
    correlation = torch.corrcoef(torch.stack([masked, true]))[0, 1]
    assert abs(correlation) < 0.03  # ~N(0, 1/sqrt(20000)) = 0.007 for independent values
    assert abs((masked > 0).double().mean() - 0.5) < 0.02  # sign balance of a uniform int64
    assert masked.abs().median() > 2.0**61  # values spread over the whole int64 range
    boosted = mask_updates(flat * 100, ids, 99)[3].double()
    assert abs(torch.corrcoef(torch.stack([boosted, true]))[0, 1]) < 0.03
    assert abs(boosted.abs().median() / masked.abs().median() - 1) < 0.05  # no trace of the 100x scale


def test_dropped_clients_are_corrected_for() -> None:
    flat, ids = updates(25, 300), torch.arange(25) * 2
    masked = mask_updates(flat, ids, 8)
    survivors = torch.ones(25, dtype=torch.bool)
    survivors[[4, 17]] = False
    total = masked_total(masked[survivors])
    correction = dropout_correction(ids[~survivors], ids, 8, 300)
    recovered = unmask_sum(torch.stack([total, correction]))
    assert (recovered - flat[survivors].double().sum(0)).abs().max() < 1e-5
    assert (unmask_sum(total) - flat[survivors].double().sum(0)).abs().max() > 1e6  # uncorrected: garbage


def test_large_rounds_mask_in_seconds() -> None:
    flat, ids = updates(500, 20_000), torch.arange(500)
    started = time.perf_counter()
    masked = mask_updates(flat, ids, 1)
    assert time.perf_counter() - started < 20  # ~1 s: 500 clients x 18 partners x 2e4 values
    assert (unmask_sum(masked) - flat.double().sum(0)).abs().max() < 1e-4


def test_unencodable_updates_are_rejected() -> None:
    flat = updates(3, 4)
    flat[1, 2] = float("nan")
    with pytest.raises(MmfedrecError, match="NaN"):
        mask_updates(flat, torch.arange(3), 0)
    with pytest.raises(MmfedrecError, match="exceeds"):
        mask_updates(torch.full((2, 2), 1e13), torch.arange(2), 0)
    with pytest.raises(MmfedrecError, match="distinct"):
        mask_updates(updates(2, 2), np.array([1, 1]), 0)
