from dataclasses import replace

import numpy as np
import pytest
import torch

from mmfedrec.config import LocalConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.local import training as local
from mmfedrec.federation.local.batches import build_round_examples, pad_chunks, round_key
from mmfedrec.federation.local.history import EventContexts
from mmfedrec.federation.local.training import DENSE_MAX_RATIO, RowFactors, example_loss, local_train
from mmfedrec.federation.models import build_model
from mmfedrec.federation.models.item_tower import ItemTower
from tests.federation.helpers import planted_split


class WithoutShortcut:
    """The same model seen without `client_vector`: local training takes the generic autograd path."""

    def __init__(self, model: object) -> None:
        self.model = model

    def __getattr__(self, name: str) -> object:
        if name == "client_vector":
            raise AttributeError(name)
        return getattr(self.model, name)


@pytest.mark.parametrize("model_name", ["moe", "mf"])
@pytest.mark.parametrize("loss", ["bce", "softmax"])
@pytest.mark.parametrize(
    "config",
    [
        LocalConfig(lr=0.05, shared_lr=0.05, row_optimizer=""),
        LocalConfig(lr=0.05, shared_lr=0.05, row_optimizer="sgd", row_lr=20.0),
    ],
)
def test_the_dot_product_shortcut_steps_item_vectors_like_autograd(
    model_name: str, config: LocalConfig, loss: str
) -> None:
    config = replace(config, loss=loss)
    split = planted_split()
    generator = torch.Generator().manual_seed(0)
    model = build_model(model_name, 16, n_experts=3)
    shared, private = model.init_shared(generator), model.init_private(split.n_users, generator)
    table = ItemTower(split.n_items, 16, generator=generator)().detach()
    indptr, items = split.train_csr()
    examples = build_round_examples(np.arange(split.n_users), indptr, items, split.n_items, 4, round_key(0, 1))
    chunk = pad_chunks(examples, max_cells=512)[0]
    chunk_private = {k: v[chunk.clients] for k, v in private.items()}
    fast = local_train(model, shared, chunk_private, table, chunk, config)
    generic = local_train(WithoutShortcut(model), shared, chunk_private, table, chunk, config)
    # Adam's first step normalises each factor of the outer product on its own, which differs from
    # normalising the product only where a factor is near eps: allow 1 % of a step there (3 % under
    # softmax, whose negatives far below the positive carry gradients near eps).
    share = 0.03 if loss == "softmax" else 0.01
    atol = share * config.row_step[1] if config.row_step[0] == "adam" else 1e-6
    torch.testing.assert_close(fast.row_delta, generic.row_delta, atol=atol, rtol=1e-4)
    for name, value in generic.private.items():
        torch.testing.assert_close(fast.private[name], value, msg=name)
    if config.row_step[0] == "sgd":
        assert fast.row_delta.abs().max() < 0.5 * config.row_lr  # a gradient step, not a sign step


def test_row_step_defaults_follow_the_client_optimizer() -> None:
    assert LocalConfig(lr=0.3).row_step == ("adam", 0.3)  # "auto" before the data is read
    assert LocalConfig(lr=0.3, local_optimizer="sgd").row_step == ("sgd", 0.3)
    assert LocalConfig(lr=0.3, row_optimizer="sgd", row_lr=20.0).row_step == ("sgd", 20.0)
    with pytest.raises(MmfedrecError, match="row_optimizer"):
        LocalConfig(row_optimizer="lion")


@pytest.mark.parametrize("history", [0, 3])  # one client vector per local step, or per example
@pytest.mark.parametrize("dense_ratio", [DENSE_MAX_RATIO, 0])  # a dense product, or a sparse one
def test_factored_item_updates_sum_per_item_like_their_rows(
    monkeypatch: pytest.MonkeyPatch, dense_ratio: int, history: int
) -> None:
    split = planted_split()
    generator = torch.Generator().manual_seed(0)
    model = build_model("moe", 16, n_experts=3, history=history)
    shared, private = model.init_shared(generator), model.init_private(split.n_users, generator)
    table = ItemTower(split.n_items, 16, generator=generator)().detach()
    indptr, items = split.train_csr()
    examples = build_round_examples(np.arange(split.n_users), indptr, items, split.n_items, 4, round_key(0, 1))
    chunk = pad_chunks(examples, max_cells=512)[0]
    event_contexts = EventContexts.for_model(model, indptr, items, split.n_items)
    contexts = None if event_contexts is None else event_contexts.contexts(table)
    chunk_private = {k: v[chunk.clients] for k, v in private.items()}
    result = local_train(
        model, shared, chunk_private, table, chunk, LocalConfig().resolved(dense=False), contexts=contexts
    )
    assert isinstance(result.row_updates, RowFactors)
    rows = result.row_delta
    expected = torch.zeros(split.n_items, 17).index_put_(
        (result.row_items[result.row_mask],), rows[result.row_mask], accumulate=True
    )
    monkeypatch.setattr(local, "DENSE_MAX_RATIO", dense_ratio)
    torch.testing.assert_close(result.item_row_sums(split.n_items), expected, atol=1e-5, rtol=1e-5)
    assert expected.abs().sum() > 0


def test_softmax_loss_ranks_the_positive_against_its_real_negatives_only() -> None:
    scores = torch.tensor([[[2.0, 1.0, 5.0, 0.5], [0.3, 0.1, 0.2, 0.4]]], requires_grad=True)  # (1, 2, 1 + 3)
    mask = torch.tensor([[[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])  # a collided negative; a padding row
    loss = example_loss(scores, mask, "softmax")
    expected = torch.nn.functional.cross_entropy(torch.tensor([[2.0, 1.0, 0.5]]), torch.tensor([0]))
    torch.testing.assert_close(loss, torch.stack([expected, torch.tensor(0.0)]).view(1, 2))
    loss.sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 0, 2] == 0 and (scores.grad[0, 1] == 0).all()
