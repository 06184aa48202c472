import pytest
import torch

from mmfedrec.federation.local.client_optimizer import PrefixOptimizer


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_stepping_a_prefix_of_clients_is_each_client_alone(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, generator=generator)
    grads = [torch.randn(3, 4, generator=generator) for _ in range(3)]  # step k: clients [:3 - k]
    together = start.clone()
    optimizer = PrefixOptimizer(kind, [([together], 0.1)])
    for k, grad in enumerate(grads):
        optimizer.step(3 - k, [[grad[: 3 - k]]])
    for client in range(3):
        alone = start[client].clone().requires_grad_()
        reference = torch.optim.Adam([alone], lr=0.1) if kind == "adam" else torch.optim.SGD([alone], lr=0.1)
        for grad in grads[: 3 - client]:  # the client takes the steps it is in the prefix of
            alone.grad = grad[client].clone()
            reference.step()
        torch.testing.assert_close(together[client], alone.detach())
    assert not torch.equal(together, start)
