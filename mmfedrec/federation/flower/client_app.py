"""Flower ClientApp: a SuperNode is a silo of users, trained with the engine's own `local_train`.

A node holds the users `np.array_split(range(n_users), num-partitions)[partition-id]` (from its
`--node-config`). Per round it draws the same counter-based examples the in-process engine
draws for those users, trains them in padded chunks, and replies with the additive
`UpdateSums` of its users plus counts; under a defence that acts per client, with each client's
upload; under secure aggregation, through SecAgg+ (`secagg_plus`). Private state (user embeddings, `router.private.*`, the
pfedrec score MLP) lives in `context.state` and never leaves the node; neither do the raw
interactions. Evaluation ranks the node's users with their private state and the global model
and replies with metric sums, so the server's means equal the in-process evaluator's.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from torch import Tensor

from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import RunConfig
from mmfedrec.data.splits import NO_ITEM, Split
from mmfedrec.evaluation import metrics
from mmfedrec.evaluation.protocols import FULL_KS, SAMPLED_KS, Scorer, rank_users, user_buckets
from mmfedrec.federation.aggregation.defended import (
    ClientUploads,
    Defense,
    bound_uploads,
    collect_uploads,
    fixed_point_sum,
)
from mmfedrec.federation.aggregation.sums import UpdateSums, update_sums
from mmfedrec.federation.engines.runner import build_client_model, noise_multiplier
from mmfedrec.federation.flower.run_config import check_flower_support, flower_split, from_run_config
from mmfedrec.federation.flower.secagg_plus import fit_reply, fit_request
from mmfedrec.federation.local.auto_steps import resolved_steps
from mmfedrec.federation.local.batches import KnownPairs, build_round_examples, counter_hash, pad_chunks, round_key
from mmfedrec.federation.local.history import EventContexts, user_contexts
from mmfedrec.federation.local.schedule import scheduled_local
from mmfedrec.federation.local.training import LocalResult, local_train
from mmfedrec.federation.models import initial_state
from mmfedrec.federation.models.protocol import ClientModel
from mmfedrec.federation.models.scorer import client_scorer
from mmfedrec.federation.privacy.comm import upload_nbytes
from mmfedrec.federation.privacy.compression import ErrorFeedbackCompressor
from mmfedrec.federation.privacy.secure_agg import encode_fixed
from mmfedrec.runtime import configure_runtime

PRIVATE_KEY = "mmfedrec.private"  # context.state: this node's private rows, (C_node, ...)
COMPRESSION_KEY = "mmfedrec.compression"  # context.state: its clients' error-feedback residuals
BEST_KEY = "mmfedrec.best-private"  # context.state: the private rows at the best validation round
META_KEY = "mmfedrec.meta"  # context.state: evaluated-round, best-round
PROTOCOLS = (("sampled", SAMPLED_KS, ("hr", "ndcg", "mrr")), ("full", FULL_KS, ("recall", "ndcg", "mrr")))
METRIC_FUNCTIONS = {"hr": metrics.hit_rate, "recall": metrics.recall, "ndcg": metrics.ndcg, "mrr": metrics.mrr}


@dataclass(frozen=True)
class Silo:
    """What a node knows: the public split structure, its users and the client model."""

    split: Split
    users: np.ndarray  # (C_node,) sorted global user indices of this silo
    model: ClientModel
    indptr: np.ndarray
    train_items: np.ndarray
    config: RunConfig  # one seed: `config.seeds[0]`
    seed: int
    known: KnownPairs  # the silo's (user, training item) pairs, which negatives avoid
    event_contexts: EventContexts | None  # a history-aware model's contexts of the training events
    defense: Defense  # the run's defences (DP noise multiplier from its privacy budget)

    def local_index(self, users: np.ndarray | Tensor) -> Tensor:
        """Rows in this node's private tensors of the global user indices `users`."""
        return torch.from_numpy(np.searchsorted(self.users, np.asarray(users)))


@dataclass
class SiloUpdate:
    """A node's reply to one training round, before it goes on the wire: one of `sums` (plain
    FedAvg), `uploads` (each client's upload, for defences that need them) or `fixed_total` (secure
    aggregation), or none when no user of the silo trained this round."""

    sums: UpdateSums | None
    n_clients: int
    n_examples: float
    upload_bytes: float  # sum over the silo's clients of what each would upload alone
    routed_mass: Tensor | None  # (K,) examples routed to each expert, summed over the silo
    uploads: ClientUploads | None = None
    fixed_total: np.ndarray | None = None  # (P + I,) int64: SecAgg+'s input (see `secure_total`)
    positives: Tensor | None = None  # (I,) with uploads: the item tower's evidence


@functools.lru_cache(maxsize=4)
def load_silo(config: RunConfig, partition_id: int, num_partitions: int) -> Silo:
    """The silo of one node (cached per process: Ray actors and `process` isolation reuse it)."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} outside 0..{num_partitions - 1}")
    check_flower_support(config)
    split = flower_split(config)
    config = resolved_steps(config, split)
    users = np.array_split(np.arange(split.n_users), num_partitions)[partition_id]
    model = build_client_model(method_spec(config.method), config, split)
    indptr, train_items = split.train_csr()
    known = KnownPairs.for_split(split, config.federated.negatives_avoid_heldout)
    contexts = EventContexts.for_model(model, indptr, train_items, split.n_items)
    defense = Defense(config.robust, config.privacy, noise_multiplier(config))
    return Silo(split, users, model, indptr, train_items, config, config.seeds[0], known, contexts, defense)


def initial_private(silo: Silo) -> dict[str, Tensor]:
    """This silo's rows of the initial private state, drawn exactly as every engine draws it."""
    _, private = initial_state(silo.model, silo.split.n_users, silo.seed)
    index = torch.from_numpy(silo.users)
    return {name: value[index].clone() for name, value in private.items()}


def train_silo(
    silo: Silo,
    private: dict[str, Tensor],
    shared: dict[str, Tensor],
    item_table: Tensor,
    server_round: int,
    selected: np.ndarray | None = None,
    compressor: ErrorFeedbackCompressor | None = None,
) -> SiloUpdate:
    """One round for the silo's (selected) users; `private` (and `compressor`'s residuals) updated in place."""
    clients = silo.users if selected is None else np.intersect1d(silo.users, selected)
    clients = clients[silo.indptr[clients + 1] > silo.indptr[clients]]  # nothing to train on: not selected
    if len(clients) == 0:
        return SiloUpdate(None, 0, 0.0, 0.0, None)
    federated, n_items = silo.config.federated, silo.split.n_items
    key = round_key(silo.seed, server_round)
    examples = build_round_examples(
        clients, silo.indptr, silo.train_items, n_items, federated.negatives, key, known=silo.known
    )
    contexts = None if silo.event_contexts is None else silo.event_contexts.contexts(item_table)
    local = scheduled_local(silo.config, server_round)
    sums: UpdateSums | None = None
    parts: list[tuple[Tensor, LocalResult]] = []
    upload, n_examples, routed = 0.0, 0.0, None
    for chunk in pad_chunks(examples, federated.max_cells):
        rows = silo.local_index(chunk.clients)
        chunk_private = {name: value[rows] for name, value in private.items()}
        result = local_train(silo.model, shared, chunk_private, item_table, chunk, local, contexts=contexts)
        for name, value in result.private.items():
            private[name][rows] = value
        n_examples += float(result.n_examples.sum())
        if result.routed_mass is not None:
            mass = result.routed_mass.sum(0)
            routed = mass if routed is None else routed + mass
        if compressor is not None:  # what leaves the silo is the compressed update
            result, sent = compressor.compress(result, chunk.clients)
        touched = result.touched_items(n_items)
        if compressor is None:
            sent = upload_nbytes(result, touched)
        upload += float(sent.double().sum())
        if silo.defense.per_client:
            parts.append((chunk.clients, result))
        else:
            chunk_sums = update_sums(result, touched, n_items, federated.expertwise)
            sums = chunk_sums if sums is None else sums + chunk_sums
    update = SiloUpdate(sums, len(clients), n_examples, upload, routed)
    if parts:
        positives = sum(result.positive_senders(n_items) for _, result in parts)
        uploads = collect_uploads(parts, n_items)
        if silo.defense.privacy.secure_agg:  # bounded here; SecAgg+ masks the total
            update.fixed_total = secure_total(bound_uploads(uploads, silo.defense), silo.defense, n_items, positives)
        else:
            update.uploads, update.positives = uploads, positives
    return update


def secure_total(uploads: ClientUploads, defense: Defense, n_items: int, positives: Tensor) -> np.ndarray:
    """(P + I,) int64: the silo's clients' `secure_vectors` and then the item positives, summed in
    fixed point modulo 2^64 (what SecAgg+ adds up over silos, exactly)."""
    clients = fixed_point_sum(uploads, defense, n_items)
    return np.concatenate([clients, encode_fixed(positives.double().unsqueeze(0))[0]]).view(np.int64)


def silo_view(split: Split, users: np.ndarray) -> Split:
    """The split with held-out items only for `users`: the evaluator then ranks just this silo."""
    keep = np.zeros(split.n_users, dtype=bool)
    keep[users] = True
    return dataclasses.replace(
        split,
        valid_items=np.where(keep, split.valid_items, NO_ITEM),
        test_items=np.where(keep, split.test_items, NO_ITEM),
    )


def silo_scorer(
    silo: Silo, private: dict[str, Tensor], shared: dict[str, Tensor], item_table: Tensor, stage: str
) -> Scorer:
    """Scores (B, I) of the silo's users from their private state and the global model (and their
    latest items before the `stage` item, for a history-aware model)."""
    context = user_contexts(silo.model, silo.split, item_table, stage)
    return client_scorer(silo.model, shared, private, item_table, context, position=silo.local_index)


def rank_sums(scorer: Scorer, split: Split, users: np.ndarray, stage: str) -> dict[str, float | int]:
    """Metric sums and user counts of this silo, overall ("all") and per bucket.

    Buckets use the quintile edges over every evaluated user of the split (as the in-process
    evaluator does), so summing the silos' replies and dividing gives its exact means.
    """
    ranks = rank_users(scorer, silo_view(split, users), stage)
    evaluated = split.evaluated_users(stage)
    position = np.searchsorted(evaluated, ranks.users)
    masks = {"all": np.ones(len(ranks.users), dtype=bool)}
    masks |= {name: mask[position] for name, mask in user_buckets(split, evaluated, stage).items()}
    sums: dict[str, float | int] = {}
    for bucket, mask in masks.items():
        sums[f"{bucket}/users"] = int(mask.sum())
        for protocol, ks, names in PROTOCOLS:
            protocol_ranks = (ranks.sampled if protocol == "sampled" else ranks.full)[mask]
            for k in ks:
                for name in names:
                    sums[f"{bucket}/{protocol}/{name}@{k}"] = float(METRIC_FUNCTIONS[name](protocol_ranks, k).sum())
    return sums


# ---- Flower glue: records in and out, state in context.state -------------------------------


def global_arrays(shared: dict[str, Tensor], item_table: Tensor) -> ArrayRecord:
    """The download: global shared tensors and the item table."""
    state = {f"shared.{name}": value.contiguous() for name, value in shared.items()}
    state["item_table"] = item_table.contiguous()
    return ArrayRecord(state)


def unpack_global(arrays: ArrayRecord) -> tuple[dict[str, Tensor], Tensor]:
    state = arrays.to_torch_state_dict()
    shared = {name[len("shared.") :]: value for name, value in state.items() if name.startswith("shared.")}
    return shared, state["item_table"]


def _node_silo(context: Context) -> tuple[RunConfig, Silo]:
    config = from_run_config(context.run_config)
    configure_runtime(config.flower.flower_threads)
    partition_id = int(context.node_config.get("partition-id", 0))
    num_partitions = int(context.node_config.get("num-partitions", 1))
    return config, load_silo(config, partition_id, num_partitions)


def _load_private(context: Context, silo: Silo) -> dict[str, Tensor]:
    if PRIVATE_KEY not in context.state:
        return initial_private(silo)
    return {name: value.clone() for name, value in context.state[PRIVATE_KEY].to_torch_state_dict().items()}


def _arrays(tensors: dict[str, Tensor]) -> ArrayRecord:
    return ArrayRecord({name: value.contiguous() for name, value in tensors.items()})


def _store(context: Context, key: str, tensors: dict[str, Tensor]) -> None:
    context.state[key] = _arrays(tensors)


def _meta(context: Context) -> ConfigRecord:
    if META_KEY not in context.state:
        context.state[META_KEY] = ConfigRecord({"evaluated-round": -1, "best-round": -1})
    return context.state[META_KEY]


def _promote_best(context: Context, private: dict[str, Tensor], best_round: int) -> None:
    """Keep the private rows of the server's best validation round (for the final test).

    The server names its best round in every message; if it is the round this node last
    evaluated, the current rows (unchanged since that evaluation) are that round's rows.
    """
    meta = _meta(context)
    if best_round == meta["evaluated-round"] and meta["best-round"] != best_round:
        _store(context, BEST_KEY, private)
        meta["best-round"] = best_round


def _compressor(context: Context, silo: Silo) -> ErrorFeedbackCompressor | None:
    """The silo's error-feedback compressor, its residuals restored from the node state."""
    if not silo.config.compression.enabled:
        return None
    compressor = ErrorFeedbackCompressor(silo.config.compression, silo.split.n_users, silo.split.n_items)
    if COMPRESSION_KEY in context.state:
        compressor.load_state(context.state[COMPRESSION_KEY].to_torch_state_dict())
    return compressor


def update_records(update: SiloUpdate) -> dict[str, ArrayRecord]:
    """The arrays of a training reply: "sums" or "uploads" (see `SiloUpdate`)."""
    if update.sums is not None:
        return {"sums": _arrays(update.sums.tensors())}
    if update.uploads is not None:
        return {"uploads": _arrays({**update.uploads.tensors(), "positives": update.positives})}
    return {}


def train_round(
    context: Context, round_config: dict, shared: dict[str, Tensor], item_table: Tensor
) -> tuple[SiloUpdate, dict[str, int | float | list[float]]]:
    """This silo's round (its state read from and kept in `context.state`); the update and its metrics."""
    _, silo = _node_silo(context)
    private = _load_private(context, silo)
    _promote_best(context, private, int(round_config.get("best-round", -1)))
    selected = round_config.get("selected")
    if isinstance(selected, bytes):  # SecAgg+'s legacy config carries it as bytes
        selected = np.frombuffer(selected, dtype=np.int64)
    selected = None if selected is None else np.asarray(selected, dtype=np.int64)
    compressor = _compressor(context, silo)
    update = train_silo(silo, private, shared, item_table, int(round_config["server-round"]), selected, compressor)
    _store(context, PRIVATE_KEY, private)
    if compressor is not None:
        _store(context, COMPRESSION_KEY, compressor.state())
    metrics: dict[str, int | float | list[float]] = {
        "num-examples": int(update.n_examples),
        "num-clients": update.n_clients,
        "upload-bytes": update.upload_bytes,
        "partition-id": int(context.node_config.get("partition-id", 0)),
    }
    if update.routed_mass is not None and update.fixed_total is None:  # not under secure aggregation
        metrics["routed-mass"] = [float(v) for v in update.routed_mass]
    return update, metrics


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train this silo's users for one round; reply with what the run's aggregation needs and counts only."""
    if RECORD_KEY_CONFIGS in msg.content:  # a stage of SecAgg+ (`--secure-agg`)
        return secaggplus_mod(msg, context, train_for_secagg_plus)
    shared, item_table = unpack_global(msg.content["arrays"])
    update, metrics = train_round(context, dict(msg.content["config"]), shared, item_table)
    content = RecordDict({"metrics": MetricRecord(metrics), **update_records(update)})
    return Message(content=content, reply_to=msg)


def train_for_secagg_plus(msg: Message, context: Context) -> Message:
    """SecAgg+'s masked-vector stage: train, and hand the mod the silo's fixed-point total to mask."""
    arrays, round_config = fit_request(msg)
    shared = {name.removeprefix("shared."): torch.from_numpy(a) for name, a in arrays.items() if name != "item_table"}
    item_table = torch.from_numpy(arrays["item_table"])
    update, metrics = train_round(context, round_config, shared, item_table)
    if update.fixed_total is None:  # no user of this silo trained: it adds zeros
        n_items, width = item_table.shape
        size = sum(value.numel() for value in shared.values()) + 1 + n_items * (width + 2)
        update.fixed_total = np.zeros(size, dtype=np.int64)
    return fit_reply(msg, update.fixed_total, metrics)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Rank this silo's held-out items (stage "valid" or "test"); reply with metric sums."""
    _, silo = _node_silo(context)
    round_config = msg.content["config"]
    stage = str(round_config.get("stage", "valid"))
    best_round = int(round_config.get("best-round", -1))
    private = _load_private(context, silo)
    _promote_best(context, private, best_round)
    meta = _meta(context)
    stale = 0
    if stage == "test":
        if meta["best-round"] == best_round and BEST_KEY in context.state:
            private = context.state[BEST_KEY].to_torch_state_dict()
        else:  # e.g. a node that rejoined after the best round: its current rows stand in
            stale = 1
    else:
        meta["evaluated-round"] = int(round_config["server-round"])
    shared, item_table = unpack_global(msg.content["arrays"])
    sums = rank_sums(silo_scorer(silo, private, shared, item_table, stage), silo.split, silo.users, stage)
    reply = MetricRecord({"num-examples": int(sums["all/users"]), "stale-private": stale, **sums})
    return Message(content=RecordDict({"metrics": reply}), reply_to=msg)


# ---- the denoiser of generative augmentation (mmfedrec.generators.federated) ----------------


def denoiser_generator(seed: int, server_round: int, partition_id: int) -> torch.Generator:
    """The draws (views, masks, noise, timesteps) of one silo in one denoiser round."""
    return torch.Generator().manual_seed(int(counter_hash(seed, server_round, partition_id, 0x444E) >> np.uint64(1)))


def denoiser_silo_update(
    silo: Silo,
    denoiser_state: dict[str, Tensor],
    round_config: dict[str, object],
    generator: torch.Generator,
) -> tuple[dict[str, Tensor], float, float]:
    """FedAvg sums of one denoiser round over this silo's users: (sum_c w_c u_c, sum_c w_c, sum_c w_c loss_c).

    Each user noises only its own training profile (interaction vector) and contributes its local
    update `u_c` (optionally clipped), weighted by its number of training interactions `w_c`:
    the server divides the added sums and steps its optimizer, as `federated_round` does.
    """
    from mmfedrec.federation.privacy.dp import clip_updates
    from mmfedrec.generators.denoiser import ProfileDenoiser
    from mmfedrec.generators.federated import client_updates
    from mmfedrec.generators.objective import completion_batch
    from mmfedrec.generators.profiles import ProfileSpace, training_histories
    from mmfedrec.generators.scheduling import training_scheduler

    space = ProfileSpace(silo.split.n_items)
    denoiser = ProfileDenoiser(
        profile_dim=space.dim,
        hidden_dim=int(round_config["hidden-dim"]),
        time_embed_dim=int(round_config["time-embed-dim"]),
    )
    denoiser.load_state_dict(denoiser_state)
    histories = training_histories(silo.split, silo.users)
    histories = histories[histories.sum(1) > 0]  # (C, I) users with a training profile
    weights = histories.sum(1)  # (C,)
    scheduler = training_scheduler(int(round_config["num-train-timesteps"]))
    keep_range = (float(round_config["keep-low"]), float(round_config["keep-high"]))
    batch = completion_batch(histories, space, scheduler, int(round_config["views-per-client"]), keep_range, generator)
    clip = float(round_config.get("clip-norm", 0.0))
    chunk_size = int(round_config.get("chunk-size", 32))
    weighted = {name: torch.zeros_like(param) for name, param in denoiser.named_parameters()}
    loss_sum = 0.0
    for start in range(0, len(weights), chunk_size):
        chunk = slice(start, start + chunk_size)
        updates, losses = client_updates(
            denoiser, batch.select(chunk), int(round_config["local-steps"]), float(round_config["local-lr"])
        )
        if clip > 0:
            updates = clip_updates(updates, clip)
        for name, update in updates.items():  # (C_chunk, ...)
            weighted[name] += torch.tensordot(weights[chunk], update, dims=1)
        loss_sum += float((losses * weights[chunk]).sum())
    return weighted, float(weights.sum()), loss_sum


@app.train("denoiser")
def train_denoiser(msg: Message, context: Context) -> Message:
    """One round of federated denoiser training on this silo: reply with update sums, never profiles."""
    _, silo = _node_silo(context)
    round_config = dict(msg.content["config"])
    partition_id = int(context.node_config.get("partition-id", 0))
    generator = denoiser_generator(silo.seed, int(round_config["server-round"]), partition_id)
    weighted, weight, loss_sum = denoiser_silo_update(
        silo, msg.content["arrays"].to_torch_state_dict(), round_config, generator
    )
    reply = RecordDict(
        {
            "sums": ArrayRecord({name: value.contiguous() for name, value in weighted.items()}),
            "metrics": MetricRecord({"num-examples": int(weight), "weight": weight, "loss-sum": loss_sum}),
        }
    )
    return Message(content=reply, reply_to=msg)
