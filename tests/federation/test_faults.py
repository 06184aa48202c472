import numpy as np
import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation.faults import (
    byzantine_clients,
    corrupt,
    dropped_clients,
    finite_clients,
    validate_message,
)


def test_byzantine_and_dropped_sets_are_seeded_exact_and_unrelated() -> None:
    attackers = byzantine_clients(200, 0.1, seed=3)
    assert attackers.dtype == bool and attackers.sum() == 20
    assert np.array_equal(attackers, byzantine_clients(200, 0.1, seed=3))
    assert not np.array_equal(attackers, byzantine_clients(200, 0.1, seed=4))
    assert not np.array_equal(attackers, dropped_clients(200, 0.1, seed=3))
    assert dropped_clients(7, 0.0, 1).sum() == 0 and dropped_clients(7, 1.0, 1).all()
    with pytest.raises(MmfedrecError, match="fraction"):
        dropped_clients(5, 1.5, 0)


def test_corruptions_touch_only_the_attackers() -> None:
    flat = torch.tensor([[1.0, -2.0], [3.0, 4.0], [0.5, 0.5]])
    mask = torch.tensor([False, True, False])
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(
        corrupt(flat, mask, "scale", generator), torch.tensor([[1.0, -2.0], [-60.0, -80.0], [0.5, 0.5]])
    )
    torch.testing.assert_close(corrupt(flat, mask, "sign-flip", generator)[1], torch.tensor([-3.0, -4.0]))
    noisy = corrupt(torch.zeros(3, 10_000), mask, "random", generator, scale=5.0)
    assert noisy[1].std().item() == pytest.approx(5.0, rel=0.05)
    assert torch.equal(noisy[[0, 2]], torch.zeros(2, 10_000))
    with pytest.raises(MmfedrecError, match="corruption"):
        corrupt(flat, mask, "flip", generator)


def test_finite_clients_rejects_nan_and_inf() -> None:
    flat = torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [0.0, float("-inf")], [1e30, -1e30]])
    assert finite_clients(flat).tolist() == [True, False, False, True]


def test_validate_message_names_each_bad_field() -> None:
    expected = {"user_free": (3,), "rows": (2, 4), "mass": (2,)}
    good = {"user_free": torch.zeros(3), "rows": torch.ones(2, 4), "mass": torch.ones(2)}
    assert validate_message(good, expected) == []
    bad = {
        "user_free": torch.tensor([0.0, float("nan"), float("inf")]),
        "rows": torch.ones(4, 2),
        "private_user": torch.ones(8),
    }
    assert validate_message(bad, expected) == [
        "user_free: 2 NaN or infinite values",
        "rows: expected shape (2, 4), got (4, 2)",
        "mass: missing",
        "private_user: unexpected field",
    ]
    assert validate_message({**good, "mass": [1.0, 2.0]}, expected) == ["mass: expected a tensor, got list"]
