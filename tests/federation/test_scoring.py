import pytest
import torch

from mmfedrec.federation.models.scoring import gathered_dot, row_dot, table_dot


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


def _plain_scores_and_gradient(table: torch.Tensor, items: torch.Tensor, vectors: torch.Tensor, upstream: torch.Tensor):
    """Scores and the vectors' gradient by plain autograd: the reference of the custom functions."""
    leaf = vectors.detach().clone().requires_grad_()
    scores = (table[items] * leaf.unsqueeze(1)).sum(-1)
    (scores * upstream).sum().backward()
    return scores.detach(), leaf.grad


@pytest.mark.parametrize("length", [5, 40])  # a few rows per vector (an example's), or many (a client's)
def test_gathered_and_row_scores_match_plain_autograd(length: int) -> None:
    generator = torch.Generator().manual_seed(1)
    table = torch.randn(30, 6, generator=generator)
    items = torch.randint(0, 30, (9, length), generator=generator)  # repeats: their gradients add up
    vectors = torch.randn(9, 6, generator=generator)
    upstream = torch.randn(9, length, generator=generator)
    expected_scores, expected_grad = _plain_scores_and_gradient(table, items, vectors, upstream)
    for score in (lambda v: gathered_dot(table, items, v), lambda v: row_dot(table[items], v)):
        leaf = vectors.clone().requires_grad_()
        scores = score(leaf)
        (scores * upstream).sum().backward()
        torch.testing.assert_close(scores, expected_scores)
        torch.testing.assert_close(leaf.grad, expected_grad)
