"""The in-process simulation engine: rounds of select -> local train -> aggregate.

`engine="batched"` trains all selected clients of a round in a few padded tensor programs;
`engine="loop"` trains them one by one with the same `local_train` (the reference). Both draw
the same examples from the same generator, so they agree to float tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import Split
from mmfedrec.federation.aggregation.defended import (
    Defense,
    aggregate_defended,
    attack,
    collect_uploads,
    expected_clients,
    reject_non_finite,
)
from mmfedrec.federation.aggregation.faults import byzantine_clients, dropped_clients
from mmfedrec.federation.aggregation.server import ClientSampler, ServerModel
from mmfedrec.federation.aggregation.sums import UpdateSums, update_sums
from mmfedrec.federation.engines.resumable import (
    generator_state,
    load_optimizer_tensors,
    optimizer_tensors,
    restore_generator,
)
from mmfedrec.federation.local.auto_steps import resolved_steps
from mmfedrec.federation.local.batches import (
    KnownPairs,
    build_round_examples,
    pad_chunks,
    round_key,
    single_client_chunks,
)
from mmfedrec.federation.local.history import EventContexts, pseudo_history_table, user_contexts
from mmfedrec.federation.local.personal_items import PersonalItemRows
from mmfedrec.federation.local.schedule import scheduled_local
from mmfedrec.federation.local.training import LocalResult, local_train
from mmfedrec.federation.models import initial_state
from mmfedrec.federation.models.item_tower import ItemTower
from mmfedrec.federation.models.protocol import ClientModel
from mmfedrec.federation.models.scorer import client_scorer
from mmfedrec.federation.privacy.comm import client_upload, download_nbytes, upload_nbytes
from mmfedrec.federation.privacy.compression import ErrorFeedbackCompressor, compressed_message

Pseudo = tuple[np.ndarray, np.ndarray, np.ndarray]  # (users, items, weights) of pseudo-interactions


@dataclass(frozen=True)
class RoundStats:
    round: int
    seconds: float
    clients: int
    upload_bytes_per_client: float
    download_bytes_per_client: float
    dropped: int = 0  # selected clients that never replied
    rejected: int = 0  # uploads the server refused (NaN/Inf)


class Simulation:
    """Server state + every client's private state for one federated run."""

    def __init__(
        self,
        model: ClientModel,
        tower: ItemTower,
        split: Split,
        config: RunConfig,
        seed: int,
        *,
        federate: bool = True,
        noise_multiplier: float = 0.0,
    ) -> None:
        """Args:
        federate: False for the local-only baseline: every client keeps its own item vectors.
        noise_multiplier: DP noise on the sums, derived from `config.privacy.dp_epsilon`.
        """
        self.model = model
        self.tower = tower
        self.config = config = resolved_steps(config, split)
        self.federate = federate
        self.defense = Defense(config.robust, config.privacy, noise_multiplier)
        federated = config.federated
        self.shared, self.private = initial_state(model, split.n_users, seed)
        self.seed = seed
        self.sampler = ClientSampler(split.n_users, config.federated.client_fraction, seed)
        self._pseudo: Pseudo | None = None
        self.pseudo_history: np.ndarray | None = None  # (U, P) generated items read as older history
        self.use_split(split)
        self.server = ServerModel.for_run(self.shared, tower, federated)
        self.local_tables: Tensor | None = None
        if not federate:  # local-only: each client owns a copy of the starting item vectors
            with torch.no_grad():
                self.local_tables = tower().detach().unsqueeze(0).repeat(split.n_users, 1, 1)
        self.personal = PersonalItemRows(split.n_items) if federated.personal_items and federate else None
        self.attackers = torch.from_numpy(byzantine_clients(split.n_users, config.robust.byzantine, seed))
        self.noise = torch.Generator().manual_seed(seed + 1)  # DP noise and random attacks
        self.compressor = None
        if config.compression.enabled and federate:
            self.compressor = ErrorFeedbackCompressor(config.compression, split.n_users, split.n_items)
        self.on_upload: Callable[[int, dict[str, Tensor]], None] | None = None  # hears every upload message

    def select_clients(self) -> np.ndarray:
        return self.sampler.select()

    def use_split(self, split: Split) -> None:
        """Train and rank on `split` from now on (the same users and items, other events): how
        clients join a trained model (`mmfedrec.federation.engines.joining`)."""
        self.split = split
        self.indptr, self.train_items = split.train_csr()
        self.known = KnownPairs.for_split(split, self.config.federated.negatives_avoid_heldout)
        self._build_event_contexts()

    def _build_event_contexts(self) -> None:
        """The training events' history contexts, with the pseudo-history when there is one."""
        self.event_contexts = EventContexts.for_model(
            self.model, self.indptr, self.train_items, self.split.n_items, self.pseudo_history
        )

    @property
    def pseudo(self) -> Pseudo | None:
        """Sparse clients' pseudo-interactions (users, items, weights) from an augmenter, or None."""
        return self._pseudo

    @pseudo.setter
    def pseudo(self, pseudo: Pseudo | None) -> None:
        """Take them as `augment.pseudo_as` says: weighted positives in local training, the older
        part of a short history context (a history-aware model), or both."""
        self._pseudo = pseudo
        as_history = pseudo is not None and self.model.history and self.config.augment.pseudo_as != "positives"
        self.pseudo_history = pseudo_history_table(pseudo[0], pseudo[1], self.split.n_users) if as_history else None
        self._build_event_contexts()

    def _pseudo_positives(self) -> Pseudo | None:
        as_positives = self.config.augment.pseudo_as != "history" or not self.model.history
        return self._pseudo if as_positives else None

    def run_round(self, round_index: int, clients: np.ndarray | None = None, update_server: bool = True) -> RoundStats:
        """One round: local training of the selected `clients` (default: the sampler's), then
        aggregation; without `update_server` the clients train their own state only and the
        shared model stays as it is."""
        started = time.perf_counter()
        clients = self.select_clients() if clients is None else clients
        clients = clients[self.indptr[clients + 1] > self.indptr[clients]]  # nothing to train on: not selected
        key = round_key(self.seed, round_index)
        silent = dropped_clients(len(clients), self.config.robust.dropout, key)
        clients = clients[~silent]  # they never reply: the round goes on without them
        examples = build_round_examples(
            clients,
            self.indptr,
            self.train_items,
            self.split.n_items,
            self.config.federated.negatives,
            key,
            self._pseudo_positives(),
            self.known,
        )
        chunks = (
            single_client_chunks(examples)
            if self.config.engine == "loop"
            else pad_chunks(examples, self.config.federated.max_cells)
        )
        item_table = self.server.item_table()
        contexts = None if self.event_contexts is None else self.event_contexts.contexts(item_table)
        local = scheduled_local(self.config, round_index)
        shared = self.config.augment.pseudo_trains == "all"  # pseudo positives reach the shared model
        sums: UpdateSums | None = None
        per_client: list[tuple[Tensor, LocalResult]] = []
        upload = torch.zeros(len(clients), dtype=torch.float64)
        for chunk in chunks:
            private = {k: v[chunk.clients] for k, v in self.private.items()}
            if self.local_tables is None:
                result = local_train(
                    self.model, self.shared, private, item_table, chunk, local, contexts=contexts, pseudo_shared=shared
                )
            else:
                result = local_train(
                    self.model,
                    self.shared,
                    private,
                    self.local_tables,
                    chunk,
                    local,
                    chunk.clients,
                    pseudo_shared=shared,
                )
            for name, value in result.private.items():
                self.private[name][chunk.clients] = value
            if not update_server:  # the client's own state only: nothing is sent
                if self.local_tables is not None:
                    self._apply_locally(chunk.clients, result)
                continue
            if self.personal is not None:
                self.personal.update(chunk.clients, result, item_table)
            if self.compressor is not None:  # what the server receives is the compressed update
                result, sent = self.compressor.compress(result, chunk.clients)
                touched = result.touched_items(self.split.n_items)
            else:
                touched = result.touched_items(self.split.n_items)
                sent = upload_nbytes(result, touched)
            upload[torch.from_numpy(chunk.rows)] = sent.double()
            if self.on_upload is not None and self.federate:
                self._tap_messages(chunk.clients, result)
            if self.local_tables is not None:
                self._apply_locally(chunk.clients, result)
            elif self.defense.per_client:
                per_client.append((chunk.clients, result))
            else:
                chunk_sums = update_sums(result, touched, self.split.n_items, self.config.federated.expertwise)
                sums = chunk_sums if sums is None else sums + chunk_sums
        rejected = 0
        if sums is not None:
            self.server.apply(sums, item_table)
        elif per_client:
            rejected = self._aggregate_defended(per_client, round_index, key, item_table)
        download = download_nbytes(self.shared, item_table) if self.federate else 0
        return RoundStats(
            round=round_index,
            seconds=time.perf_counter() - started,
            clients=len(clients),
            upload_bytes_per_client=float(upload.mean()) if self.federate else 0.0,
            download_bytes_per_client=float(download),
            dropped=int(silent.sum()),
            rejected=rejected,
        )

    def _tap_messages(self, clients: Tensor, result: LocalResult) -> None:
        """Hand `on_upload` each client's message, built from the very update the server aggregates."""
        for k, client in enumerate(clients.tolist()):
            if self.compressor is None:
                message = client_upload(result, k)
            else:
                message = compressed_message(result, k, self.config.compression)
            self.on_upload(client, message)

    def _aggregate_defended(
        self, parts: list[tuple[Tensor, LocalResult]], round_index: int, key: int, item_table: Tensor
    ) -> int:
        """Attacks, validation and the defended aggregation; returns how many uploads were rejected."""
        defense = self.defense
        uploads = collect_uploads(parts, self.split.n_items)
        if defense.robust.byzantine > 0:
            uploads = attack(uploads, self.attackers[uploads.clients], defense.robust.byzantine_mode, self.noise)
        uploads, rejected = reject_non_finite(uploads, round_index)
        if len(uploads.clients) == 0:
            return rejected
        expected = expected_clients(self.config.federated.client_fraction, self.split.n_users)
        delta, row_update = aggregate_defended(
            uploads, defense, self.split.n_items, expected, self.noise, key, self.config.federated.row_average
        )
        positives = sum(result.positive_senders(self.split.n_items) for _, result in parts)
        self.server.apply_delta(delta, row_update, item_table, positives)
        return rejected

    def _apply_locally(self, clients: Tensor, result: LocalResult) -> None:
        owners = clients.view(-1, 1, 1).expand_as(result.row_items)
        mask = result.row_mask
        self.local_tables.index_put_((owners[mask], result.row_items[mask]), result.row_delta[mask], accumulate=True)

    def scorer(self, stage: str = "valid"):
        """Scores (B, I) for user indices, from each client's private state and the global model
        (and, for a history-aware model, each client's latest items before its `stage` item)."""
        item_table = self.server.item_table()
        context = user_contexts(self.model, self.split, item_table, stage, self.pseudo_history)
        rows: Tensor | Callable[[Tensor], Tensor] = item_table
        if self.local_tables is not None:
            rows = self.local_tables.__getitem__
        elif self.personal is not None:
            rows = partial(self.personal.tables, table=item_table)
        return client_scorer(self.model, self.shared, self.private, rows, context)

    def state(self) -> dict[str, Tensor]:
        """Everything needed to score: a snapshot for model selection and checkpoints."""
        snapshot = {f"shared.{k}": v.clone() for k, v in self.shared.items()}
        snapshot.update({f"private.{k}": v.clone() for k, v in self.private.items()})
        snapshot.update({f"tower.{k}": v.detach().clone() for k, v in self.tower.state_dict().items()})
        if self.local_tables is not None:
            snapshot["local_tables"] = self.local_tables.clone()
        if self.personal is not None:
            snapshot |= self.personal.state()
        return snapshot

    def checkpoint_state(self) -> tuple[dict[str, Tensor], dict]:
        """Model state plus optimizer and generator state: enough to continue exactly."""
        tensors = self.state()
        tensors |= optimizer_tensors(self.server.optimizer.adam, "optim.server")
        tensors |= optimizer_tensors(self.server.tower_updater.content_optimizer, "optim.content")
        tensors["rng.noise"] = self.noise.get_state()
        if self.compressor is not None:
            tensors |= self.compressor.state()
        return tensors, {"rng": generator_state(self.sampler.rng)}

    def restore_checkpoint_state(self, tensors: dict[str, Tensor], meta: dict) -> None:
        self.load_state(tensors)
        load_optimizer_tensors(self.server.optimizer.adam, tensors, "optim.server")
        load_optimizer_tensors(self.server.tower_updater.content_optimizer, tensors, "optim.content")
        self.noise.set_state(tensors["rng.noise"])
        if self.compressor is not None:
            self.compressor.load_state(tensors)
        restore_generator(self.sampler.rng, meta["rng"])

    def load_state(self, snapshot: dict[str, Tensor]) -> None:
        for k in self.shared:
            self.shared[k].copy_(snapshot[f"shared.{k}"])
        for k in self.private:
            self.private[k].copy_(snapshot[f"private.{k}"])
        self.tower.load_state_dict({k[len("tower.") :]: v for k, v in snapshot.items() if k.startswith("tower.")})
        if self.local_tables is not None:
            self.local_tables.copy_(snapshot["local_tables"])
        if self.personal is not None:
            self.personal.load_state(snapshot)
