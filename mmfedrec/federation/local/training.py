"""Local training of a group of clients, written once for both engines.

The batched engine calls `local_train` on padded chunks of many clients; the reference loop
calls it on one client at a time (C = 1). Each client gets its own copy of the shared tensors
and of the item vectors it touches. Padding sits at the end of each client's examples and a
step in which a client has no example is undone for it, so both engines compute the same thing
(optimizer state is elementwise, hence per client, and starts fresh each round).

Every example carries its own copy of its item vectors, so each copy takes one step per epoch.
Under Adam that is Adam's first step, lr * g / (|g| + eps): applied directly, it needs no
optimizer state (Adam moments for ~16M floats a round on ML-100K). For models whose score is a
dot product with a client vector (MF, ours) the rows' gradient is an outer product, so the step
is formed from its two factors and the per-row gradient is never computed. With one local
epoch those models do not form the steps: the result keeps the two factors (`RowFactors`, for
the example positions trained, none of the padding) and sums them per item in one product, and
with one client vector per step they gather no rows either (`table_dot` scores the whole table).
A history-aware model (`model.history > 0`) has one client vector per example, so its rows are
gathered, and its factors hold a vector per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import Tensor

from mmfedrec.config.tree import LOSSES, LocalConfig
from mmfedrec.federation.local.batches import NO_EVENT, PaddedChunk
from mmfedrec.federation.local.client_optimizer import ADAM_EPS, PrefixOptimizer
from mmfedrec.federation.models.protocol import ClientModel, DotProductModel
from mmfedrec.federation.models.scoring import DENSE_MAX_RATIO, gathered_dot, row_dot, table_dot

MASKED_LOGIT = -1e9  # a collided negative's logit under the softmax loss: no weight, no gradient


@dataclass(frozen=True)
class RowFactors:
    """Item-vector changes of a dot-product model after one epoch, as two factors, for the example
    positions the local steps went through (none of the padding after a client's last step).

    Position p, a client's example slot in one local step, moved each of its copies j by
    `delta[p, j] = scale[p, j] * vectors[vector_of[p]]`: the client's (normalised) vector at that
    step, or with a history the example's own (`vector_of` None: vector p). Kept factored, the
    sums per item are one matrix product instead of a scatter of every row.
    """

    cells: Tensor  # (P,) each position's cell c * L + l in the chunk's (C, L) layout
    items: Tensor  # (P, 1 + n_neg) the item of each copy
    scale: Tensor  # (P, 1 + n_neg)
    vectors: Tensor  # (V, D + 1)
    vector_of: Tensor | None  # (P,) the vector each position's copies moved along (non-decreasing); None: its own

    def dense(self, shape: torch.Size) -> Tensor:
        """(C, L, 1 + n_neg, D + 1) the change of every item-vector copy, in the chunk's layout
        `shape` (C, L, 1 + n_neg); zero for padding."""
        rows = self.scale.unsqueeze(-1) * self._position_vectors().unsqueeze(1)  # (P, 1 + n_neg, D + 1)
        layout = rows.new_zeros(shape[0] * shape[1], *rows.shape[1:])
        return layout.index_copy_(0, self.cells, rows).view(*shape, -1)

    def _position_vectors(self) -> Tensor:
        """(P, D + 1) the vector of each position."""
        return self.vectors if self.vector_of is None else self.vectors[self.vector_of]

    def item_sums(self, n_items: int) -> Tensor:
        """(I, D + 1) the changes summed per item: the scales as a sparse (I, V) matrix in
        compressed columns, one column per vector, times the vectors. The factors already are that
        matrix (positions grouped by vector, their copies in order), so nothing is sorted; scipy's
        product reads the vectors in order and adds into the (I, D + 1) sums, which stay in cache:
        faster than torch's CSR product of the copies sorted by item (the same sums to the bit) and
        than the scales summed into a dense (V, I) matrix and one product
        (benchmarks/history_kernels.py)."""
        copies = self.items.shape[1]
        if self.vector_of is None:  # a vector per position
            column_starts = np.arange(0, self.items.numel() + 1, copies)
        else:
            per_vector = np.bincount(self.vector_of.numpy(), minlength=len(self.vectors)) * copies
            column_starts = np.concatenate([[0], np.cumsum(per_vector)])
        matrix = scipy.sparse.csc_array(
            (self.scale.numpy().ravel(), self.items.numpy().ravel(), column_starts), shape=(n_items, len(self.vectors))
        )
        return torch.from_numpy(matrix @ self.vectors.numpy())


class _FactorWriter:
    """Fills a chunk's `RowFactors` one local step at a time, each step's (n, B) positions after
    the last: only the positions trained are stored, so a chunk's padding costs nothing here, and
    each step's factors are copied while they are still in cache."""

    def __init__(
        self, chunk: PaddedChunk, steps: list[slice], prefix: list[int], per_example: bool, width: int
    ) -> None:
        """`prefix`: the clients each of `steps` trains; `width`: D + 1."""
        self.length = chunk.items.shape[1]
        sizes = [n * (min(step.stop, self.length) - step.start) for step, n in zip(steps, prefix, strict=True)]
        n_positions, copies = sum(sizes), chunk.items.shape[2]
        self.cells = torch.empty(n_positions, dtype=torch.int64)
        self.items = torch.empty(n_positions, copies, dtype=torch.int64)
        self.scale = torch.empty(n_positions, copies)
        self.vector_of = None if per_example else torch.empty(n_positions, dtype=torch.int64)
        self.vectors = torch.empty(n_positions if per_example else sum(prefix), width)
        self.n_positions = self.n_vectors = 0

    def write(self, step: slice, items: Tensor, score_grad: Tensor, vector: Tensor, config: LocalConfig) -> None:
        """A step's `items` and score gradient (n, B, 1 + n_neg) and its vectors: (n, B, D + 1) with
        one per example, else (n, D + 1); the step's factors (`_bilinear_row_step`) are written
        straight into the buffers."""
        n, span = items.shape[:2]
        stored = slice(self.n_positions, self.n_positions + n * span)
        cells = torch.arange(n).unsqueeze(1) * self.length + torch.arange(step.start, step.start + span)
        self.cells[stored] = cells.flatten()
        self.items[stored] = items.flatten(0, 1)
        n_vectors = n * span if self.vector_of is None else n  # one per example, or per client
        if self.vector_of is not None:  # a client's vector is shared by its positions in the step
            self.vector_of[stored] = torch.arange(self.n_vectors, self.n_vectors + n).repeat_interleave(span)
        scale = self.scale[stored].view_as(score_grad)
        vectors = self.vectors[self.n_vectors : self.n_vectors + n_vectors].view_as(vector)
        _bilinear_row_step(score_grad, vector, config, (scale, vectors))
        self.n_positions += n * span
        self.n_vectors += n_vectors

    def factors(self) -> RowFactors:
        return RowFactors(self.cells, self.items, self.scale, self.vectors, self.vector_of)


@dataclass
class LocalResult:
    """What a chunk of clients produced. Only `shared_delta`, the row updates (+ items),
    `routed_mass` and `n_examples` are uploaded; `private` stays on the clients."""

    private: dict[str, Tensor]  # (C, ...) new private state
    shared_delta: dict[str, Tensor]  # (C, ...) local shared - global shared
    # After compression the rows are merged per (client, item): (C, P) instead of (C, L, 1 + n_neg).
    # Where `row_mask` is false, `row_items` is a valid index and the row's update is zero, so sums
    # may skip the mask.
    row_items: Tensor  # (C, L, 1 + n_neg) item index of each touched item vector
    row_mask: Tensor  # (C, L, 1 + n_neg) which of them are real
    row_updates: Tensor | RowFactors  # (C, L, 1 + n_neg, D + 1) change of each touched item vector, or its factors
    routed_mass: Tensor | None  # (C, K) examples routed to each expert
    n_examples: Tensor  # (C,) number of real examples
    positives: Tensor  # (C, L) each example's positive item, -1 for padding (kept through compression)

    @property
    def row_delta(self) -> Tensor:
        """(C, L, 1 + n_neg, D + 1) change of each touched item vector (formed once if factored)."""
        if isinstance(self.row_updates, RowFactors):
            self.row_updates = self.row_updates.dense(self.row_items.shape)
        return self.row_updates

    @property
    def row_update_nbytes(self) -> int:
        """Bytes of one item-vector update (D + 1 values)."""
        updates = self.row_updates
        one_row = updates.vectors if isinstance(updates, RowFactors) else updates
        return one_row.shape[-1] * one_row.element_size()

    def item_row_sums(self, n_items: int) -> Tensor:
        """(I, D + 1) the chunk's item-vector updates summed per item."""
        updates = self.row_updates
        if isinstance(updates, RowFactors):
            return updates.item_sums(n_items)
        width = self.row_delta.shape[-1]  # masked-out rows are zero: no masked copy
        return torch.zeros(n_items, width).index_add_(0, self.row_items.flatten(), self.row_delta.reshape(-1, width))

    def positive_items(self, k: int) -> Tensor:
        """Client k's distinct positive items this round, sorted: the evidence it uploads."""
        mine = self.positives[k]
        return torch.unique(mine[mine >= 0])

    def held_items(self, n_items: int) -> Tensor:
        """(C, I) which items each client of the chunk holds as a training positive this round (the
        evidence it uploads)."""
        return client_item_table(self.positives, self.positives >= 0, n_items)

    def positive_senders(self, n_items: int) -> Tensor:
        """(I,) how many clients of the chunk hold each item as a training positive (each client
        once): the evidence that lets the server use an item's ID vector (`ItemTower`)."""
        return self.held_items(n_items).sum(0).float()

    def row_keys(self, owners: Tensor, n_items: int) -> Tensor:
        """Keys `owner * n_items + item` of the real rows (in `row_delta[row_mask]` order), where
        `owners` (C,) names each client of the chunk (its row, its id, ...)."""
        owner = owners.view(-1, *[1] * (self.row_mask.dim() - 1)).expand_as(self.row_mask)
        return owner[self.row_mask] * n_items + self.row_items[self.row_mask]

    def touched_items(self, n_items: int) -> Tensor:
        """(C, I) which item vectors each client of the chunk sends an update for (one per item,
        however many of its copies the client trained): its sums per client and per item count the
        uploaded rows and each item's senders."""
        return client_item_table(self.row_items, self.row_mask, n_items)


def client_item_table(items: Tensor, mask: Tensor, n_items: int) -> Tensor:
    """(C, I) bool: which items appear in each client's row of `items` (C, ...) where `mask` is
    true. One bool table filled at the keys: faster than listing the pairs and counting them
    (benchmarks/history_kernels.py)."""
    n_rows = items.shape[0]
    rows = torch.arange(n_rows).view(-1, *[1] * (items.dim() - 1))
    spare = n_rows * n_items  # where masked-out entries land: no compaction of the real ones
    keys = torch.where(mask, rows * n_items + items, spare)
    seen = torch.zeros(spare + 1, dtype=torch.bool).index_fill_(0, keys.flatten(), True)
    return seen[:spare].view(n_rows, n_items)


def sum_by_key(keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """(sorted distinct keys (R,), sum of the `values` rows sharing each key (R, ...)): how a
    client merges the copies of one item vector into the single update it sends."""
    distinct, inverse = torch.unique(keys, return_inverse=True)
    return distinct, values.new_zeros((len(distinct), *values.shape[1:])).index_add_(0, inverse, values)


def example_loss(scores: Tensor, mask: Tensor, kind: str) -> Tensor:
    """(C, B) loss per example from scores (C, B, 1 + n_neg) whose first column is the positive."""
    if kind == "bce":
        labels = torch.zeros_like(scores)
        labels[..., 0] = 1.0
        per_item = F.binary_cross_entropy_with_logits(scores, labels, reduction="none") * mask
        return per_item.sum(-1)
    if kind == "bpr":
        margin = scores[..., :1] - scores[..., 1:]  # (C, B, n_neg)
        negatives = mask[..., 1:]
        return -(F.logsigmoid(margin) * negatives).sum(-1) / negatives.sum(-1).clamp_min(1)
    if kind == "softmax":  # cross-entropy of the positive against its negatives (Klenitskiy & Vasilev, 2023)
        present = mask > 0
        logits = scores.masked_fill(~present, MASKED_LOGIT)  # padding rows stay finite, then weigh 0
        return -torch.log_softmax(logits, -1)[..., 0] * mask[..., 0]
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {kind!r}")


def _optimizer(config: LocalConfig, shared: list[Tensor], own: list[Tensor]) -> PrefixOptimizer:
    """Large steps on what is the client's own (user state, item vectors it touched), smaller ones
    on shared dense tensors: every client moves those, and large local steps there do not average
    into a useful update (on ML-100K a large step on the experts cost NDCG@10)."""
    return PrefixOptimizer(config.local_optimizer, [(shared, config.shared_lr), (own, config.lr)])


def _step_rows(
    item_table: Tensor, items: Tensor, owners: Tensor | None, row_delta: Tensor | None, epoch: int, step: slice
) -> Tensor:
    """(n, B, 1 + n_neg) item indices of a step -> (n, B, 1 + n_neg, D + 1) vectors, from one table
    or from each client's own, with the changes earlier epochs made to these copies."""
    n = items.shape[0]
    # `embedding` gathers rows faster than advanced indexing (benchmarks/history_kernels.py)
    rows = F.embedding(items, item_table) if owners is None else item_table[owners[:n].view(-1, 1, 1), items]
    if epoch > 0:
        rows += row_delta[:n, step]
    return rows


@torch.no_grad()
def _add_row_step(row_delta: Tensor, grad: Tensor, config: LocalConfig) -> None:
    """Add the step of item-vector copies that each serve one example: under Adam, Adam's first
    step lr * g / (|g| + eps) (moments g and g^2 after bias correction); under SGD, lr * g."""
    optimizer, lr = config.row_step
    if optimizer == "adam":
        row_delta.addcdiv_(grad, grad.abs().add_(ADAM_EPS), value=-lr)
    else:
        row_delta.add_(grad, alpha=-lr)


@torch.no_grad()
def _bilinear_row_step(
    score_grad: Tensor, vector: Tensor, config: LocalConfig, out: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """The factors (scale (C, B, 1 + n_neg), vector (C, D + 1)) of the item-vector step for
    grad = score_grad x vector, which is never formed; written into `out` when given.

    Under Adam each factor is normalised on its own, a / (|a| + eps) x b / (|b| + eps): equal to
    Adam's first step wherever |a| and |b| exceed eps, and like it continuous at zero (so float
    noise cannot flip a step, as sign(g) would)."""
    optimizer, lr = config.row_step
    scale, step_vector = out if out is not None else (torch.empty_like(score_grad), torch.empty_like(vector))
    if optimizer == "adam":
        torch.div(score_grad, score_grad.abs().add_(ADAM_EPS), out=scale).mul_(-lr)
        torch.div(vector, vector.abs().add_(ADAM_EPS), out=step_vector)
    else:
        torch.mul(score_grad, -lr, out=scale)
        step_vector.copy_(vector)
    return scale, step_vector


@torch.no_grad()
def _keep_inactive(params: list[Tensor], before: list[Tensor], active: Tensor) -> None:
    """Undo a step for clients with no example in it: Adam's momentum would move them anyway,
    while the one-client loop never takes that step."""
    for param, old in zip(params, before, strict=True):
        param.copy_(torch.where(active.view(-1, *[1] * (param.dim() - 1)), param, old))


def _per_copy(examples: Tensor, items: Tensor) -> Tensor:
    """(n, B * (1 + n_neg)) an example mask (n, B) spread over its positive's and negatives' scores."""
    return examples.unsqueeze(-1).expand(items.shape).reshape(len(items), -1)


def _grad(leaf: Tensor) -> Tensor:
    """A leaf's gradient; zero for a tensor the loss did not use."""
    return torch.zeros_like(leaf) if leaf.grad is None else leaf.grad


def local_train(
    model: ClientModel,
    shared: dict[str, Tensor],
    private: dict[str, Tensor],
    item_table: Tensor,
    chunk: PaddedChunk,
    config: LocalConfig,
    owners: Tensor | None = None,
    contexts: Tensor | None = None,
    pseudo_shared: bool = True,
) -> LocalResult:
    """Train each client of `chunk` on its examples, starting from the global `shared` tensors.

    Args:
        model: a client model (see `mmfedrec.federation.models`).
        shared: global shared tensors, no client dim.
        private: this chunk's private state, (C, ...).
        item_table: starting item vectors, (I, D + 1) for every client, or (U, I, D + 1) when
            each client has its own table (local-only), read at rows `owners` (C,).
        contexts: a history-aware model's (N + 1, D) context of every training event this round
            (`EventContexts.contexts`), read at `chunk.events`.
        pseudo_shared: False keeps pseudo positives (augmentation) to the client's own state: they
            are scored through a copy of the shared tensors without gradient, move no item
            vector, and are neither counted nor sent as positives.
    """
    if not config.is_resolved:
        raise ValueError("local_train needs concrete client steps: resolve the auto ones first (auto_steps)")
    n_clients, length = chunk.weights.shape
    local_shared = {k: v.unsqueeze(0).repeat(n_clients, *[1] * v.dim()) for k, v in shared.items()}
    local_private = {k: v.clone() for k, v in private.items()}
    steps = [slice(start, start + config.batch_size) for start in range(0, length, config.batch_size)]
    n_items, width = item_table.shape[-2:]
    bilinear = isinstance(model, DotProductModel)  # scores = row_dot(rows, client_vector): MF, ours
    history = bool(model.history)  # one client vector per example, from its history context
    if history and contexts is None:
        raise ValueError("a history-aware model needs the round's event contexts")
    event_rows = chunk.events.remainder(len(contexts)) if history else None  # NO_EVENT -> the last row, zero
    real = chunk.weights > 0  # (C, L)
    own = None if pseudo_shared else real & (chunk.events == NO_EVENT)  # (C, L) pseudo positives kept private
    if own is not None and not bool(own.any()):
        own = None
    counts = real.sum(-1)  # (C,)
    by_size = bool((counts[:-1] >= counts[1:]).all())  # pad_chunks orders a chunk's clients largest first
    # Clients ordered by size: those with examples in a step are a prefix, the rest skip it.
    prefix = [int((counts > step.start).sum()) if by_size else n_clients for step in steps]
    factors = None  # each copy's step stays factored (RowFactors) ...
    if bilinear and config.local_epochs == 1:
        factors, row_delta = _FactorWriter(chunk, steps, prefix, per_example=history, width=width), None
    else:  # ... or is added to its copy, which later epochs read
        row_delta = item_table.new_zeros((*chunk.items.shape, width))  # (C, L, 1 + n_neg, D + 1)
    optimizer = _optimizer(config, list(local_shared.values()), list(local_private.values()))
    item_mask = chunk.item_mask.float()
    for epoch in range(config.local_epochs):
        for step, n in zip(steps, prefix, strict=True):
            # Fresh leaves over the first n clients' storage: gradients only for them.
            params_private = {k: v[:n].detach().requires_grad_() for k, v in local_private.items()}
            params_shared = {k: v[:n].detach().requires_grad_() for k, v in local_shared.items()}
            items = chunk.items[:n, step]  # (n, B, 1 + n_neg)
            step_own = None if own is None else own[:n, step]  # (n, B)
            if step_own is not None:  # what private-only examples read: the shared tensors without gradient
                frozen = {k: v.detach() for k, v in params_shared.items()}
            if bilinear and history:  # one client vector per example
                context = F.embedding(event_rows[:n, step], contexts)  # (n, B, D): per step, no padding
                vector = model.client_vector(params_private, params_shared, context)  # (n, B, D + 1)
                if step_own is not None:
                    own_vector = model.client_vector(params_private, frozen, context)
                    vector = torch.where(step_own.unsqueeze(-1), own_vector, vector)
                if row_delta is None and owners is None:  # the rows are the table's: gathered, not kept
                    flat_scores = gathered_dot(item_table, items.flatten(0, 1), vector.flatten(0, 1)).view(n, -1)
                else:
                    rows = _step_rows(item_table, items, owners, row_delta, epoch, step)  # (n, B, 1 + n_neg, D + 1)
                    flat_scores = row_dot(rows.flatten(0, 1), vector.flatten(0, 1)).view(n, -1)
                flat_scores.retain_grad()
            elif bilinear:  # the rows' gradient is score gradient x client vector: never formed
                vector = model.client_vector(params_private, params_shared)  # (n, D + 1)
                if row_delta is None and owners is None and n_items <= DENSE_MAX_RATIO * items[0].numel():
                    score = partial(table_dot, item_table, items.view(n, -1))  # no rows gathered
                else:
                    rows = _step_rows(item_table, items, owners, row_delta, epoch, step)
                    score = partial(row_dot, rows.view(n, -1, width))
                flat_scores = score(vector)
                if step_own is not None:
                    own_scores = score(model.client_vector(params_private, frozen))
                    flat_scores = torch.where(_per_copy(step_own, items), own_scores, flat_scores)
                flat_scores.retain_grad()
            else:  # a fresh leaf per step: its backward only touches the item vectors the step used
                rows = _step_rows(item_table, items, owners, row_delta, epoch, step).requires_grad_()
                flat_scores = model.scores(params_private, params_shared, rows.view(n, -1, width))
                if step_own is not None:
                    own_scores = model.scores(params_private, frozen, rows.detach().view(n, -1, width))
                    flat_scores = torch.where(_per_copy(step_own, items), own_scores, flat_scores)
            scores = flat_scores.view(items.shape)  # (n, B, 1 + n_neg)
            per_example = example_loss(scores, item_mask[:n, step], config.loss) * chunk.weights[:n, step]
            n_real = real[:n, step].sum(-1)  # (n,)
            active = n_real > 0  # (n,) clients with an example in this step
            is_active = active.float()
            # the mean over the examples the shared model learns from: private-only ones leave its gradient as it was
            n_sent = n_real if step_own is None else n_real - step_own.sum(-1)
            loss = per_example.sum(-1) / n_sent.clamp_min(1)
            loss = loss + is_active * model.auxiliary_loss(params_private, params_shared)
            if config.weight_decay:
                loss = loss + is_active * config.weight_decay * (params_private["user"] ** 2).sum(-1)
            if config.fedprox_mu:
                for name, tensor in params_shared.items():
                    drift = (tensor - shared[name]).pow(2).flatten(1).sum(-1)
                    loss = loss + is_active * 0.5 * config.fedprox_mu * drift
            loss.sum().backward()
            # Padding and collided negatives have zero gradient, hence no step.
            if bilinear:
                score_grad = flat_scores.grad.view(scores.shape)
                if step_own is not None:  # private-only examples move no item vector
                    score_grad = score_grad.masked_fill(step_own.unsqueeze(-1), 0.0)
                if factors is not None:
                    factors.write(step, items, score_grad, vector.detach(), config)
                else:  # the vector of each client (n, D + 1) or of each example (n, B, D + 1)
                    scale, step_vector = _bilinear_row_step(score_grad, vector.detach(), config)
                    per_copy = step_vector.unsqueeze(-2) if history else step_vector[:, None, None, :]
                    row_delta[:n, step].addcmul_(scale.unsqueeze(-1), per_copy)
            else:
                _add_row_step(row_delta[:n, step], rows.grad, config)
            grads = [[_grad(t) for t in params_shared.values()], [_grad(t) for t in params_private.values()]]
            if bool(active.all()):  # clients [n:] (none, or those out of examples) are not stepped
                optimizer.step(n, grads)
            else:
                stepped = [*params_shared.values(), *params_private.values()]
                before = [t.detach().clone() for t in stepped]
                optimizer.step(n, grads)
                _keep_inactive(stepped, before, active)
    with torch.no_grad():
        sent = real if own is None else real & ~own  # the examples the shared model learned from
        n_examples = sent.sum(-1).float()
        gate = model.routed_mass(local_private, local_shared)
        row_mask = chunk.item_mask if own is None else chunk.item_mask & ~own.unsqueeze(-1)
        return LocalResult(
            private=local_private,
            shared_delta={k: local_shared[k].sub_(shared[k]) for k in shared},  # in place: the copies are ours
            row_items=chunk.items,
            row_mask=row_mask,
            row_updates=row_delta if factors is None else factors.factors(),
            routed_mass=None if gate is None else gate * n_examples.unsqueeze(-1),
            n_examples=n_examples,
            positives=torch.where(row_mask[..., 0], chunk.items[..., 0], -1),
        )
