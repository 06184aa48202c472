import torch

from mmfedrec.federation.models.scoring import row_dot, table_dot


def test_scoring_the_whole_table_gives_the_gathered_rows_scores_and_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(30, 5, generator=generator)
    items = torch.randint(0, 30, (4, 12), generator=generator)  # repeats: their gradients add up
    upstream = torch.randn(4, 12, generator=generator)
    gathered = torch.randn(4, 5, generator=generator, requires_grad=True)
    dense = gathered.detach().clone().requires_grad_()
    expected = row_dot(table[items], gathered)
    (expected * upstream).sum().backward()
    scores = table_dot(table, items, dense)
    (scores * upstream).sum().backward()
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(dense.grad, gathered.grad)
