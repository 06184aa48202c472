"""One typed configuration tree: every setting of a run, with its default and its help, once.

The CLI's flags (`--<field-name>`), config files (TOML sections), Flower's run config (flat
`section.field` keys) and a run folder's `config.json` are all derived from these dataclasses by
`mmfedrec.config.codec` and `mmfedrec.config.arguments`, so adding a hyperparameter is adding one field here. Field names are unique
across the tree: a flag names its field without its section. Importing this module never
imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmfedrec.config.methods import METHODS
from mmfedrec.errors import MmfedrecError

DATASET_NAMES = ("synthetic", "movielens-100k", "movielens-1m", "hm-fashion", "csv", "parquet")
SPLITS = ("time", "random")
ENGINES = ("sim", "loop", "flower-sim", "flower-deploy")
LOSSES = ("bce", "bpr", "softmax")
LR_SCHEDULES = ("constant", "cosine")
SELECTION_METRICS = ("ndcg@10", "hr@10")  # sampled-protocol validation metrics a round may be chosen on
ROW_AVERAGES = ("senders", "clients")
AGGREGATORS = ("fedavg", "median", "trimmed-mean")
AUGMENTERS = ("none", "diffusion", "popularity", "item-knn")


class ConfigError(MmfedrecError):
    """A setting out of its range or of the wrong type; the message names the field."""


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple = (),
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A field with its help text and the values it accepts (checked on construction)."""
    metadata = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
    }
    return field(default=default, metadata=metadata)


def flag(name: str) -> str:
    """The CLI flag of a field."""
    return "--" + name.replace("_", "-")


def _check_value(name: str, value: Any, meta: dict) -> None:
    where = f"{flag(name)} ({name})"
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value}")
    if meta.get("choices") and value not in meta["choices"]:
        choices = ", ".join(repr(c) if c == "" else str(c) for c in meta["choices"])
        raise ConfigError(f"{where} must be one of {choices}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        raise ConfigError(f"{where} must be {'>' if meta['low_open'] else '>='} {low}, got {value}")
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        raise ConfigError(f"{where} must be {'<' if meta['high_open'] else '<='} {high}, got {value}")


class Section:
    """A group of settings; every field is checked against its metadata when built."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            values = value if isinstance(value, tuple) else (value,)
            for one in values:
                if one is not None and not dataclasses.is_dataclass(one):
                    _check_value(item.name, one, item.metadata)


@dataclass(frozen=True)
class DataConfig(Section):
    """What to load and how to turn it into implicit feedback."""

    dataset: str = setting("synthetic", "dataset to load", choices=DATASET_NAMES)
    root: Path | None = setting(None, "folder of a MovieLens release (u.data / ratings.dat) or of the H&M sample")
    interactions: Path | None = setting(None, "csv/parquet interactions file: user,item,timestamp[,rating]")
    items: Path | None = setting(None, "csv/parquet items file: item_id,title,text,image_path")
    items_table: Path | None = setting(None, "enrichment: CSV keyed by movie_id/item_id with a text column")
    text_column: str = setting("overview", "enrichment column used as item text")
    encoding: str = setting("utf-8", "text encoding of CSV files (e.g. latin-1, cp1252)")
    image_dir: Path | None = setting(None, "enrichment: folder of <item_id>.<ext> images")
    image_audit: Path | None = setting(None, "enrichment: audit CSV; items whose auto_flag != ok lose their image")
    min_rating: float | None = setting(None, "implicit feedback: keep ratings >= this (unset: every rating)")
    kcore: int = setting(0, "drop users/items with fewer events, iteratively (0 = off)", low=0)
    synthetic_users: int = setting(600, "users of the embedded synthetic dataset", low=1)
    synthetic_items: int = setting(400, "items of the embedded synthetic dataset", low=1)
    data_seed: int = setting(0, "seed of the synthetic generator", low=0, high=2**32 - 1)
    cache_dir: Path | None = setting(Path(".cache/mmfedrec"), "canonical Parquet and feature cache (unset: no cache)")
    split: str = setting(
        "time",
        "leave-one-out order: time (by timestamp, ties by item id) or random (seeded; what data without "
        "timestamps gets either way)",
        choices=SPLITS,
    )

    def absolute(self) -> DataConfig:
        """The same data with absolute paths, so that a saved config works from any folder."""
        paths = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), Path)
        }
        return replace(self, **{name: path.absolute() for name, path in paths.items()})


@dataclass(frozen=True)
class EvalConfig(Section):
    """How rounds are evaluated and the reported one chosen (validation only)."""

    eval_negatives: int = setting(99, "sampled-protocol negatives per evaluated user", low=1, high=100_000)
    eval_every: int = setting(1, "validate every N rounds (and at the last round)", low=1)
    select_on: str = setting("ndcg@10", "validation metric that picks the reported round", choices=SELECTION_METRICS)
    patience: int = setting(0, "stop after N evaluations without improvement (0 = never)", low=0)
    cold_items: float = setting(
        0.0,
        "cold-start protocol: a seeded fraction of items loses every training event (valid/test stay), so "
        "only content can rank them; 0 = off",
        low=0,
        high=1,
        high_open=True,
    )


AUTO_HISTORY = 10  # `history = -1` on a time-ordered split (benchmarks/README.md, "Cold items": the next default)
ID_VECTORS_MIN_MEDIAN = 3  # training interactions of the median item for `id_vectors = "auto"` to learn them
# What the "auto" local steps become on dense and on sparse data (`local.dense_events`): chosen on the
# validation splits of synthetic, ML-100K (time, random) and H&M (benchmarks/README.md, "Defaults
# from data statistics"), and checked on subsets of them. Dense (long client histories): FedMF's SGD
# item step and a fast shared step. Sparse (a few events per client): Adam item steps, and a slow
# shared step (a few events per client overfit the shared experts within a few rounds).
AUTO_STEPS = {
    "dense": {"row_optimizer": "sgd", "row_lr": 50.0, "shared_lr": 0.05},
    "sparse": {"row_optimizer": "", "row_lr": 0.0, "shared_lr": 0.001},
}


@dataclass(frozen=True)
class ModelConfig(Section):
    """The client model's shape."""

    dim: int = setting(32, "user/item vector width", low=1, high=4096)
    experts: int = setting(0, "experts of ours and its ablations (0 = the method's own: 4)", low=0, high=256)
    history: int = setting(
        -1,
        "ours and its ablations: the user state also reads a recency-weighted mean of the client's N latest "
        "items through a shared context map (next-item training; the items stay on the client); 0 = off; "
        f"-1 = auto: {AUTO_HISTORY} where the split has a time order, else off",
        low=-1,
        high=1000,
    )
    id_vectors: str = setting(
        "auto",
        "content methods: learn a per-item ID vector beside the fused content; auto = on when the median item "
        f"has at least {ID_VECTORS_MIN_MEDIAN} training interactions (fewer: an ID vector fits one or two users, "
        "and sharing the content space ranks better)",
        choices=("auto", "on", "off"),
    )


@dataclass(frozen=True)
class TrainConfig(Section):
    """The run's length, its learning-rate schedule and the central baselines' optimiser."""

    rounds: int = setting(30, "federated rounds (central methods: epochs)", low=1)
    lr_schedule: str = setting(
        "cosine",
        "client learning rates over the rounds: a cosine decay over --rounds (settles, no late decay), or constant",
        choices=LR_SCHEDULES,
    )
    central_lr: float = setting(0.005, "Adam step of the central methods", low=0, low_open=True)
    central_batch_size: int = setting(1024, "examples per step of the central methods", low=1)
    checkpoint_every: int = setting(0, "write a resumable checkpoint every N rounds (0 = never)", low=0)


@dataclass(frozen=True)
class FederatedConfig(Section):
    """What a round samples and how the server folds the uploads in."""

    client_fraction: float = setting(1.0, "fraction of clients sampled per round", low=0, high=1, low_open=True)
    negatives: int = setting(16, "training negatives per positive", low=1, high=1000)
    negatives_avoid_heldout: bool = setting(
        False,
        "PFedRec's sampling: training negatives also avoid each user's valid/test items (reads held-out labels; "
        "only to compare with numbers published that way)",
    )
    personal_items: bool = setting(
        False,
        "PFedRec's dual personalisation for any federated method: each client ranks with the item vectors it "
        "fine-tuned in its last round (private; in-process engines only)",
    )
    server_optimizer: str = setting("fedavg", "server step on the dense shared tensors", choices=("fedavg", "fedadam"))
    server_lr: float = setting(1.0, "server learning rate on the dense shared tensors", low=0, low_open=True)
    content_lr: float = setting(0.001, "server Adam step on the item tower's content (fusion)", low=0, low_open=True)
    id_shrink: float = setting(
        0.01, "share of each item ID vector handed to the content per round (0 = never)", low=0, high=1, high_open=True
    )
    expertwise: bool = setting(True, "weight expert updates by the mass routed to them (else by examples)")
    row_average: str = setting(
        "senders",
        "an item vector's summed update is divided by the clients that trained it (FedMF) or by all clients "
        "of the round (FedAvg over the whole table, as PFedRec's code)",
        choices=ROW_AVERAGES,
    )
    max_cells: int = setting(1 << 16, "padded examples per batched chunk (bounds memory)", low=1)


@dataclass(frozen=True)
class LocalConfig(Section):
    """A client's local steps."""

    lr: float = setting(0.1, "client step on the user state and item vectors", low=0, low_open=True)
    shared_lr: float = setting(
        0.0, "client step on the shared dense tensors (experts, MLPs); 0 = auto (--steps-probe)", low=0
    )
    local_optimizer: str = setting("adam", "adam (fresh state each round) or sgd", choices=("adam", "sgd"))
    local_epochs: int = setting(1, "passes over the client's examples per round", low=1, high=1000)
    batch_size: int = setting(64, "examples (a positive and its negatives) per local step", low=1)
    loss: str = setting(
        "softmax",
        "bce: each item on its own; bpr: the positive over each negative; softmax: the positive against all its "
        "negatives at once (sampled softmax)",
        choices=LOSSES,
    )
    fedprox_mu: float = setting(0.0, "FedProx: mu/2 ||shared_local - shared_global||^2 (0 = off)", low=0)
    weight_decay: float = setting(0.0, "L2 on the private user state", low=0)
    row_optimizer: str = setting(
        "auto",
        "step of the item vectors a client touches: adam (Adam's first step) or sgd; '' = --local-optimizer; "
        "auto = the dense steps (sgd at --row-lr, 0: 50) or the sparse ones (--local-optimizer at --lr), by --steps-probe",
        choices=("auto", "", "adam", "sgd"),
    )
    row_lr: float = setting(0.0, "learning rate of the item-vector step (0 = --lr)", low=0)
    dense_events: int = setting(
        20,
        "auto steps where no probe runs (--steps-probe 0, Flower, DP): the data is dense when its median client has at least "
        "this many training interactions",
        low=0,
    )
    steps_probe: int = setting(
        20,
        "auto steps on the in-process engines: train the dense and the sparse steps this many rounds and keep the "
        "better on validation (0 = decide by --dense-events; Flower and DP runs always do)",
        low=0,
    )

    @property
    def row_step(self) -> tuple[str, float]:
        """(optimizer, learning rate) of the item-vector steps ("auto" read as '': resolve it first)."""
        optimizer = self.row_optimizer if self.row_optimizer != "auto" else ""
        return optimizer or self.local_optimizer, self.row_lr or self.lr

    @property
    def is_resolved(self) -> bool:
        """No "auto" step is left (`resolved`)."""
        return self.row_optimizer != "auto" and self.shared_lr > 0

    def resolved(self, dense: bool) -> LocalConfig:
        """The steps with "auto" settings replaced by `AUTO_STEPS` for dense or sparse data."""
        steps = AUTO_STEPS["dense" if dense else "sparse"]
        local = self
        if local.row_optimizer == "auto":  # a --row-lr given is the dense data's SGD step
            row_lr = (local.row_lr or steps["row_lr"]) if dense else steps["row_lr"]
            local = replace(local, row_optimizer=steps["row_optimizer"], row_lr=row_lr)
        if local.shared_lr == 0:
            local = replace(local, shared_lr=steps["shared_lr"])
        return local

    def scaled(self, factor: float) -> LocalConfig:
        """The same steps with every learning rate (own, shared, item vectors) times `factor`."""
        return replace(self, lr=self.lr * factor, shared_lr=self.shared_lr * factor, row_lr=self.row_step[1] * factor)


@dataclass(frozen=True)
class PrivacyConfig(Section):
    """Client-level differential privacy and secure aggregation."""

    dp_epsilon: float = setting(0.0, "client-level DP budget over the run (0 = off)", low=0)
    dp_delta: float = setting(1e-5, "DP delta", low=0, high=1, low_open=True, high_open=True)
    dp_clip: float = setting(1.0, "per-client L2 clip of the whole update", low=0, low_open=True)
    secure_agg: bool = setting(False, "masked dense uploads, the server sees only the sum (Flower: SecAgg+)")


@dataclass(frozen=True)
class RobustConfig(Section):
    """Robust aggregation, and the attacks and faults to test it with."""

    aggregator: str = setting("fedavg", "how the uploads are combined", choices=AGGREGATORS)
    trim: float = setting(0.1, "trimmed mean: fraction cut from each side", low=0, high=0.5, high_open=True)
    norm_bound: float = setting(0.0, "scale each update to at most this L2 norm (0 = off)", low=0)
    byzantine: float = setting(
        0.0, "fraction of clients that attack (fixed for the run)", low=0, high=1, high_open=True
    )
    byzantine_mode: str = setting("scale", "the attack", choices=("scale", "random", "sign-flip"))
    dropout: float = setting(0.0, "fraction of selected clients that never reply", low=0, high=1, high_open=True)


@dataclass(frozen=True)
class CompressionConfig(Section):
    """Upload compression; error feedback keeps what is not sent for the next round."""

    compress_topk: float = setting(
        1.0, "fraction of shared entries and item rows each client sends (1 = all)", low=0, high=1, low_open=True
    )
    compress_bits: int = setting(32, "32: float32 values; 8: int8 values with a float32 scale", choices=(8, 32))

    @property
    def enabled(self) -> bool:
        return self.compress_topk < 1.0 or self.compress_bits != 32

    @property
    def value_bytes(self) -> int:
        return 1 if self.compress_bits == 8 else 4


@dataclass(frozen=True)
class FeatureConfig(Section):
    """The encoders that embed item text and images."""

    text_model: str = setting("", "local text model folder ('' = the packaged all-MiniLM-L6-v2)")
    image_preset: str = setting("tiny", "open_clip preset of the image tower")
    image_checkpoint: str = setting("", "trained image tower (safetensors); '' = a seeded random init, said so")

    def absolute(self) -> FeatureConfig:
        """Local paths made absolute; a Hub id or '' stays as it is."""

        def local(text: str) -> str:
            path = Path(text).expanduser()
            return str(path.absolute()) if text and path.exists() else text

        return replace(self, text_model=local(self.text_model), image_checkpoint=local(self.image_checkpoint))


@dataclass(frozen=True)
class AugmentConfig(Section):
    """The sparse-client protocol and generative augmentation."""

    augment: str = setting("none", "pseudo-interactions for sparse clients", choices=AUGMENTERS)
    sparse_fraction: float = setting(0.0, "cut this fraction of evaluated clients (protocol; 0 = off)", low=0, high=1)
    sparse_max: int = setting(5, "... to this many most recent training events; also who is augmented", low=0)
    n_pseudo: int = setting(10, "pseudo-interactions per sparse client", low=0, high=10_000)
    pseudo_weight: float = setting(0.5, "their weight in the local loss (a real one weighs 1)", low=0)
    min_confidence: float = setting(0.0, "drop pseudo-items the augmenter scores below this")
    pseudo_as: str = setting(
        "positives",
        "how a client uses them: positives, history (the older part of a short history context) or both",
        choices=("positives", "history", "both"),
    )
    pseudo_trains: str = setting(
        "own", "what they train: the client's own state, or 'all' (also shared model and items)", choices=("own", "all")
    )
    denoiser_rounds: int = setting(300, "diffusion: FedAvg rounds of the denoiser", low=1)
    diffusion_condition: str = setting(
        "items+features",
        "diffusion: what the denoiser reads of a client, its items or also their mean text and image feature",
        choices=("items", "items+features"),
    )
    diffusion_steps: int = setting(1, "diffusion: DDIM sampling steps", low=1, high=1000)
    diffusion_strength: float = setting(
        1.0, "diffusion: noise on the client's profile before denoising (1 = pure noise)", low=0, high=1, low_open=True
    )
    new_clients: float = setting(
        0.0,
        "hold out this fraction of evaluated clients; they join the trained model (protocol; 0 = off)",
        low=0,
        high=1,
    )
    join_items: tuple[int, ...] = setting(
        (1, 3, 5), "... each with this many most recent training events, in turn", low=1
    )
    join_epochs: int = setting(
        10, "local epochs a joining client trains its own state, shared model frozen (chosen on validation)", low=1
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.new_clients > 0 and self.sparse_fraction > 0:
            raise ConfigError("--new-clients and --sparse-fraction are two protocols: measure one at a time")
        if self.new_clients > 0 and not self.join_items:
            raise ConfigError("--join-items is empty: give the event counts clients join with, e.g. 1,3,5")


@dataclass(frozen=True)
class FlowerConfig(Section):
    """The Flower engines' runtime."""

    min_nodes: int = setting(1, "the server waits for this many SuperNodes before round 1", low=1)
    node_wait_timeout: float = setting(120.0, "seconds to wait for --min-nodes", low=0, low_open=True)
    round_timeout: float = setting(
        600.0, "seconds to wait for replies; a silent node leaves the round", low=0, low_open=True
    )
    flower_threads: int = setting(1, "torch threads in every Flower process (shared CPUs collapse with more)", low=1)
    reply_poll: float = setting(
        0.0, "seconds between the ServerApp's reply pulls (0 = flwr's own, 3 s; see docs/flower.md)", low=0
    )
    outcome_dir: str = setting("", "where the ServerApp writes its outcome (the launcher sets it; '' = nowhere)")


@dataclass(frozen=True)
class RunConfig(Section):
    """Everything a run needs: the method, its seeds, the engine, and one section per concern."""

    method: str = setting("ours", "the method to train", choices=tuple(METHODS))
    seeds: tuple[int, ...] = setting((0,), "seeds, comma-separated (0,1,2)", low=0, high=2**32 - 1)
    engine: str = setting(
        "sim",
        "sim: batched in-process; loop: per-client reference; flower-sim / flower-deploy: Flower's engines",
        choices=ENGINES,
    )
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flower: FlowerConfig = field(default_factory=FlowerConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        method = METHODS[self.method]
        if not self.seeds:
            raise ConfigError("--seeds is empty")
        if self.model.experts and (method.model != "moe" or method.n_experts == 1):
            raise ConfigError(f"--experts applies to the mixture-of-experts methods (ours, ...), not {self.method}")
        if self.model.history > 0 and method.model != "moe":
            raise ConfigError(f"--history applies to ours and its ablations, not {self.method}")
        if self.augment.new_clients > 0 and method.kind != "federated":
            raise ConfigError(f"--new-clients joins clients to a federated model; {self.method} is not one")
        uses_sum = self.privacy.secure_agg or self.privacy.dp_epsilon > 0 or self.federated.row_average == "clients"
        if uses_sum and self.robust.aggregator != "fedavg":
            raise ConfigError(
                f"aggregator {self.robust.aggregator} needs each client's upload; secure aggregation, DP noise and "
                "row average 'clients' work on the sum (use --aggregator fedavg)"
            )

    def absolute(self) -> RunConfig:
        """The same run with absolute paths, so that a saved config works from any folder."""
        return replace(self, data=self.data.absolute(), features=self.features.absolute())
