"""The kernels behind a history-aware round, each against the form it replaced, at one ML-100K round's shapes.

    python benchmarks/history_kernels.py --json [--threads 2]

A history model has one client vector per example (31k examples in a chunk's largest step, 98k in
a round, 5 item rows each: a positive and 4 negatives). Prints milliseconds per call, median of
repeats, for:
- item_sums: the round's item-vector steps summed per item, as scipy's product of the factors in
  compressed columns (`RowFactors.item_sums`) against torch's CSR product of the copies sorted by
  item, and against forming every row and scattering it;
- item_sums_per_client: the same without history (a vector per client and step), against the
  scales summed into a dense (vector, item) matrix;
- touched_items: which items each client of a chunk sends, marked in a map by `index_fill`
  against listing the distinct pairs and counting them;
- gather: an example's rows by `embedding` against advanced indexing;
- score_dot: the gathered rows' dot products with their example's vector, one batched product
  against a product and sum;
- vector_grad: the vectors' gradient as one `embedding_bag` against a product and sum over saved rows;
- short_rows_grad, long_rows_grad: over saved rows, a product and sum against a batched matrix
  product, at 5 rows per vector and at 320 (`SHORT_ROWS`);
- expert_mixture: 492 clients' mixed (D, D) experts as products against broadcast sums, forward and backward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np


def milliseconds(run: Callable[[], object], repeats: int = 30) -> float:
    run()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return round(1000 * statistics.median(seconds), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args()

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    import torch
    import torch.nn.functional as F

    from mmfedrec.federation.local.training import RowFactors

    generator = torch.Generator().manual_seed(0)
    n_items, width, copies = 1682, 33, 5
    table = torch.randn(n_items, width, generator=generator)
    results: dict[str, dict[str, float]] = {}

    # a round: 98k examples, one vector per example
    positions = 98_000
    items = torch.randint(0, n_items, (positions, copies), generator=generator)
    factors = RowFactors(
        torch.arange(positions), items, torch.randn(positions, copies), torch.randn(positions, width), None
    )

    def formed_and_scattered() -> torch.Tensor:
        rows = factors.dense(torch.Size([1, positions, copies])).reshape(-1, width)  # one row of positions
        return torch.zeros(n_items, width).index_add_(0, items.flatten(), rows)

    def sorted_torch_csr() -> torch.Tensor:  # what the compressed columns replaced
        flat_items = items.flatten()
        order = torch.from_numpy(np.argsort(flat_items.numpy().astype(np.int16), kind="stable"))
        row_starts = flat_items.new_zeros(n_items + 1)
        row_starts[1:] = torch.bincount(flat_items, minlength=n_items).cumsum(0)
        values = factors.scale.flatten().index_select(0, order)
        with warnings.catch_warnings():  # torch marks sparse CSR as beta
            warnings.simplefilter("ignore", UserWarning)
            matrix = torch.sparse_csr_tensor(row_starts, order // copies, values, (n_items, positions))
            return matrix @ factors.vectors

    results["item_sums"] = {
        "scipy_csc": milliseconds(lambda: factors.item_sums(n_items), 10),
        "torch_csr_sorted": milliseconds(sorted_torch_csr, 10),
        "form_and_scatter": milliseconds(formed_and_scattered, 10),
    }
    # without history: a vector per client and step (2,005 in an ML-100K round, 49 positions each)
    client_steps, span = 2005, 49
    per_client = RowFactors(
        torch.arange(client_steps * span),
        torch.randint(0, n_items, (client_steps * span, copies), generator=generator),
        torch.randn(client_steps * span, copies, generator=generator),
        torch.randn(client_steps, width, generator=generator),
        torch.arange(client_steps).repeat_interleave(span),
    )

    def dense_matrix() -> torch.Tensor:  # scales summed per (vector, item), then one product
        per_vector = per_client.scale.new_zeros(client_steps * n_items)
        keys = per_client.vector_of.unsqueeze(1) * n_items + per_client.items
        per_vector.index_add_(0, keys.flatten(), per_client.scale.flatten())
        return per_vector.view(-1, n_items).T @ per_client.vectors

    results["item_sums_per_client"] = {
        "scipy_csc": milliseconds(lambda: per_client.item_sums(n_items)),
        "dense_matrix": milliseconds(dense_matrix),
    }
    chunk_clients, chunk_length = 247, 261  # a 2^16-cell chunk: which items each client sends
    chunk_items = torch.randint(0, n_items, (chunk_clients, chunk_length, copies), generator=generator)
    real = torch.rand(chunk_clients, chunk_length, copies, generator=generator) > 0.3
    rows_of = torch.arange(chunk_clients).view(-1, 1, 1)

    def filled_map() -> torch.Tensor:
        spare = chunk_clients * n_items
        keys = torch.where(real, rows_of * n_items + chunk_items, spare)
        return torch.zeros(spare + 1, dtype=torch.bool).index_fill_(0, keys.flatten(), True)

    def listed_pairs() -> tuple[torch.Tensor, torch.Tensor]:
        seen = torch.zeros(chunk_clients * n_items, dtype=torch.bool)
        seen[(rows_of * n_items + chunk_items)[real]] = True
        pairs = seen.nonzero().squeeze(1)
        return torch.bincount(pairs // n_items), torch.bincount(pairs % n_items)

    results["touched_items"] = {"filled_map": milliseconds(filled_map), "listed_pairs": milliseconds(listed_pairs)}

    # the largest local step: 31k examples
    examples = 31_000
    step_items = torch.randint(0, n_items, (examples, copies), generator=generator)
    score_grad = torch.randn(examples, copies, generator=generator)
    rows = table[step_items]
    results["gather"] = {
        "embedding": milliseconds(lambda: F.embedding(step_items, table)),
        "advanced_indexing": milliseconds(lambda: table[step_items]),
    }
    step_vectors = torch.randn(examples, width, generator=generator)
    results["score_dot"] = {
        "batched_product": milliseconds(
            lambda: torch.bmm(F.embedding(step_items, table), step_vectors.unsqueeze(-1)).squeeze(-1)
        ),
        "product_and_sum": milliseconds(lambda: (F.embedding(step_items, table) * step_vectors.unsqueeze(1)).sum(-1)),
    }
    results["vector_grad"] = {
        "embedding_bag": milliseconds(
            lambda: F.embedding_bag(step_items, table, per_sample_weights=score_grad, mode="sum")
        ),
        "from_saved_rows": milliseconds(lambda: (score_grad.unsqueeze(-1) * rows).sum(1)),
    }
    results["short_rows_grad"] = {
        "product_and_sum": milliseconds(lambda: (score_grad.unsqueeze(-1) * rows).sum(1)),
        "batched_matmul": milliseconds(lambda: torch.bmm(score_grad.unsqueeze(1), rows).squeeze(1)),
    }
    client_rows = torch.randn(492, 320, width, generator=generator)  # a vector per client: many rows each
    client_grad = torch.randn(492, 320, generator=generator)
    results["long_rows_grad"] = {
        "product_and_sum": milliseconds(lambda: (client_grad.unsqueeze(-1) * client_rows).sum(1)),
        "batched_matmul": milliseconds(lambda: torch.bmm(client_grad.unsqueeze(1), client_rows).squeeze(1)),
    }

    n_clients, n_experts, dim = 492, 4, 32
    gate = torch.softmax(torch.randn(n_clients, n_experts, generator=generator), -1).requires_grad_()
    experts = torch.randn(n_clients, n_experts, dim, dim, generator=generator, requires_grad=True)
    upstream = torch.randn(n_clients, dim, dim, generator=generator)

    def broadcast_sums() -> None:
        ((gate[:, :, None, None] * experts).sum(1) * upstream).sum().backward()

    def products() -> None:
        mixed = torch.matmul(gate.unsqueeze(1), experts.flatten(-2)).view(n_clients, dim, dim)
        (mixed * upstream).sum().backward()

    results["expert_mixture"] = {"products": milliseconds(products), "broadcast_sums": milliseconds(broadcast_sums)}

    if args.json:
        print(json.dumps({"threads": args.threads, "ms": results}))
        return
    for kernel, forms in results.items():
        print(f"{kernel:16s} " + "  ".join(f"{form} {value:.2f} ms" for form, value in forms.items()))


if __name__ == "__main__":
    main()
