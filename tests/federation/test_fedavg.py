import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.aggregation import fedavg


def test_fedavg_is_the_example_weighted_mean() -> None:
    a = {"w": torch.tensor([1.0, 2.0])}
    b = {"w": torch.tensor([3.0, 6.0])}
    # weights 1 and 3: (1*1 + 3*3)/4 = 2.5, (1*2 + 3*6)/4 = 5
    assert torch.allclose(fedavg([a, b], [1, 3])["w"], torch.tensor([2.5, 5.0]))


def test_fedavg_rejects_mismatched_weights() -> None:
    with pytest.raises(MmfedrecError, match="2 updates but 1 weights"):
        fedavg([{"w": torch.zeros(1)}, {"w": torch.zeros(1)}], [1.0])
