"""Centralised training of the same client models: the upper bound a federation aims at.

All users' examples sit on one server; each minibatch mixes users, one example per row (a
"client" of length 1), so the very same `scores` code runs with the shared tensors and the item
tower as ordinary global parameters, trained by Adam.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mmfedrec.data.splits import Split
from mmfedrec.federation.engines.resumable import (
    generator_state,
    load_optimizer_tensors,
    optimizer_tensors,
    restore_generator,
)
from mmfedrec.federation.engines.simulation import RoundStats
from mmfedrec.federation.local.batches import KnownPairs, build_round_examples, round_key
from mmfedrec.federation.local.history import history_context, preceding_items, user_contexts
from mmfedrec.federation.local.schedule import lr_factor
from mmfedrec.federation.local.training import example_loss
from mmfedrec.federation.models import initial_state
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.federation.models.protocol import ClientModel
from mmfedrec.federation.models.scorer import client_scorer


class CentralTrainer:
    """One epoch per `run_round`, so federated and central curves share an x axis."""

    def __init__(
        self,
        model: ClientModel,
        tower: ItemTower,
        split: Split,
        seed: int,
        n_negatives: int = 4,
        lr: float = 0.005,
        batch_size: int = 1024,
        loss: str = "bce",
        weight_decay: float = 1e-6,
        negatives_avoid_heldout: bool = False,
        lr_schedule: str = "constant",
        rounds: int = 1,
    ) -> None:
        """`lr_schedule` over `rounds` epochs sets Adam's step each epoch (`mmfedrec.federation.local.schedule`)."""
        self.model, self.tower, self.split = model, tower, split
        with torch.no_grad():  # every training positive is in view: each item's ID part is used from the start
            tower.evidence.copy_(torch.from_numpy(split.item_counts()).float())
        shared, private = initial_state(model, split.n_users, seed)
        self.shared = {k: v.requires_grad_() for k, v in shared.items()}
        self.private = {k: v.requires_grad_() for k, v in private.items()}
        self.seed = seed
        self.rng = np.random.default_rng(seed)  # minibatch order
        self.indptr, self.train_items = split.train_csr()
        self.known = KnownPairs.for_split(split, negatives_avoid_heldout)
        self.n_negatives, self.batch_size, self.loss = n_negatives, batch_size, loss
        params = [*self.shared.values(), *self.private.values(), *tower.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        self.lr, self.lr_schedule, self.rounds = lr, lr_schedule, rounds
        self.pseudo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def run_round(self, round_index: int) -> RoundStats:
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * lr_factor(self.lr_schedule, round_index, self.rounds)
        users = np.arange(self.split.n_users)
        examples = build_round_examples(
            users,
            self.indptr,
            self.train_items,
            self.split.n_items,
            self.n_negatives,
            round_key(self.seed, round_index),
            self.pseudo,
            self.known,
        )
        owners = torch.from_numpy(np.repeat(examples.clients, examples.counts))
        items = torch.from_numpy(np.concatenate([examples.positives[:, None], examples.negatives], 1))  # (E, 1+n)
        mask = torch.from_numpy(np.concatenate([np.ones((len(owners), 1), bool), examples.negative_ok], 1)).float()
        weights = torch.from_numpy(examples.weights)
        if self.model.history:  # each example's items before its positive
            history = preceding_items(
                self.indptr, self.train_items, owners.numpy(), examples.events, self.model.history
            )
        order = torch.from_numpy(self.rng.permutation(len(owners)))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            item_table = self.tower()  # (I, D+1), in the graph: the tower trains end to end
            private = {k: v[owners[batch]] for k, v in self.private.items()}
            shared = {k: v.unsqueeze(0) for k, v in self.shared.items()}
            # each example's own history, read without gradient
            context = history_context(item_table, history[batch.numpy()]) if self.model.history else None
            scores = self.model.scores(private, shared, item_table[items[batch]], context)  # (B, 1+n)
            per_example = example_loss(scores.unsqueeze(1), mask[batch].unsqueeze(1), self.loss).squeeze(1)
            loss = (per_example * weights[batch]).mean() + self.model.auxiliary_loss(private, shared).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return RoundStats(round_index, time.perf_counter() - started, len(users), 0.0, 0.0)

    def scorer(self, stage: str = "valid"):
        with torch.no_grad():
            item_table = self.tower()
        context = user_contexts(self.model, self.split, item_table, stage)
        return client_scorer(self.model, self.shared, self.private, item_table, context)

    def state(self) -> dict[str, torch.Tensor]:
        snapshot = {f"shared.{k}": v.detach().clone() for k, v in self.shared.items()}
        snapshot.update({f"private.{k}": v.detach().clone() for k, v in self.private.items()})
        snapshot.update({f"tower.{k}": v.detach().clone() for k, v in self.tower.state_dict().items()})
        return snapshot

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return self.state() | optimizer_tensors(self.optimizer, "optim.central"), {"rng": generator_state(self.rng)}

    def restore_checkpoint_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.load_state(tensors)
        load_optimizer_tensors(self.optimizer, tensors, "optim.central")
        restore_generator(self.rng, meta["rng"])

    def load_state(self, snapshot: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k in self.shared:
                self.shared[k].copy_(snapshot[f"shared.{k}"])
            for k in self.private:
                self.private[k].copy_(snapshot[f"private.{k}"])
        self.tower.load_state_dict({k[len("tower.") :]: v for k, v in snapshot.items() if k.startswith("tower.")})
