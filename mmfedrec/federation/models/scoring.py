"""Scores that are dot products of item rows with one vector per client (MF, ours).

Such a model has a `client_vector(private, shared) -> (C, D + 1)` method and scores
`row_dot(rows, client_vector)`; local training then needs no gradient per item row (see
`mmfedrec.federation.local.training`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DENSE_MAX_RATIO = 12
"""Work on a dense (client x item) matrix pays while it is at most this many times the work per
item-vector copy: scoring every item and gathering beats gathering the rows while items / rows is
small, and loses past the break-even (benchmarks/README.md, "Figures once in code comments")."""


SHORT_ROWS = 16
"""Up to this many rows per vector, the vectors' gradient is a product and sum, not a batched
matrix product: faster at an example's few rows (its positive and negatives), while the batched
product wins at a client's hundreds (benchmarks/history_kernels.py)."""


def row_dot(rows: Tensor, vectors: Tensor) -> Tensor:
    """(C|1, L, D) item rows . (C, D) client vectors -> (C, L) scores.

    One table for every client (evaluation) is one matrix product. Rows per client (training)
    use an elementwise product and sum, with the vectors' gradient as one batched product (or a
    product and sum, up to `SHORT_ROWS` rows per vector); on CPU this is faster than autograd
    through a batched mat-vec at training shapes.
    """
    if rows.shape[0] == 1:
        return vectors @ rows[0].T
    return _RowDot.apply(rows, vectors)


class _RowDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, rows: Tensor, vectors: Tensor) -> Tensor:
        ctx.save_for_backward(rows, vectors)
        return (rows * vectors.unsqueeze(1)).sum(-1)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        rows, vectors = ctx.saved_tensors
        grad_rows = grad.unsqueeze(-1) * vectors.unsqueeze(1) if ctx.needs_input_grad[0] else None  # (C, L, D)
        grad_vectors = None
        if ctx.needs_input_grad[1]:  # (C, D)
            if rows.shape[1] <= SHORT_ROWS:  # one vector per example: a few rows each
                grad_vectors = (grad.unsqueeze(-1) * rows).sum(1)
            else:
                grad_vectors = torch.bmm(grad.unsqueeze(1), rows).squeeze(1)
        return grad_rows, grad_vectors


def gathered_dot(table: Tensor, items: Tensor, vectors: Tensor) -> Tensor:
    """(I, D) table rows at `items` (N, J) . (N, D) vectors -> (N, J) scores, for a vector per few
    rows (one per example, with a history). The rows are gathered by `embedding` and not kept: the
    vectors' gradient is one `embedding_bag`, a weighted sum of the rows: both faster than
    advanced indexing and a gradient from saved rows (benchmarks/history_kernels.py). The dot
    products are one batched product over the gathered rows, faster than a product and sum, which
    writes every (row x vector) product first. The table gets no gradient."""
    return _GatheredDot.apply(table, items, vectors)


class _GatheredDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, table: Tensor, items: Tensor, vectors: Tensor) -> Tensor:
        ctx.save_for_backward(table, items)
        return torch.bmm(F.embedding(items, table), vectors.unsqueeze(-1)).squeeze(-1)  # no (N, J, D) product

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[None, None, Tensor]:
        table, items = ctx.saved_tensors
        return None, None, F.embedding_bag(items, table, per_sample_weights=grad, mode="sum")


def table_dot(table: Tensor, items: Tensor, vectors: Tensor) -> Tensor:
    """(I, D) table rows at `items` (C, L) . (C, D) client vectors -> (C, L) scores.

    Scores every item (one product) and picks the asked ones, instead of gathering (C, L, D)
    rows: faster while I is at most `DENSE_MAX_RATIO` x L. The table gets no gradient."""
    return _TableDot.apply(table, items, vectors)


class _TableDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, table: Tensor, items: Tensor, vectors: Tensor) -> Tensor:
        ctx.save_for_backward(table, items)
        return (vectors @ table.T).gather(1, items)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[None, None, Tensor]:
        table, items = ctx.saved_tensors
        per_item = grad.new_zeros(grad.shape[0], table.shape[0]).scatter_add_(1, items, grad)  # (C, I)
        return None, None, per_item @ table
