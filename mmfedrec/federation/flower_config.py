"""The Flower run config: read once from `context.run_config` into typed values, and written back.

Every key lives in `[tool.flwr.app.config]` of pyproject.toml (Flower only accepts overrides of
keys declared there); `flwr run --run-config 'key=value ...'` overrides them. Empty strings mean
"not set" (TOML has no null). The ClientApp and ServerApp call `FlowerRunConfig.from_run_config`
once per message and pass the typed pieces (`DatasetSpec`, `TrainSettings`, ...) down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmfedrec.data.spec import DatasetSpec
from mmfedrec.data.splits import Split
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.local import LocalConfig
from mmfedrec.federation.methods import MethodSpec, method_spec
from mmfedrec.federation.runner import TrainSettings
from mmfedrec.federation.simulation import FederatedConfig


@dataclass(frozen=True)
class FlowerRunConfig:
    """One Flower run: what to train, on which data, with which seed; field = run-config key."""

    method: str = "ours-id-only"  # a name from mmfedrec.federation.methods.METHODS (federated kind)
    seed: int = 0  # seeds model init, client sampling and every round's example draws
    num_server_rounds: int = TrainSettings.rounds
    eval_every: int = 1  # validation every k rounds (and at the last round)
    select_on: str = TrainSettings.select_on  # validation metric that picks the round
    eval_negatives: int = 99  # sampled-protocol negatives per user (part of the split's cache key)
    # dataset (DatasetSpec; "" = None)
    dataset: str = "synthetic"
    dataset_root: str = ""
    interactions_file: str = ""
    items_file: str = ""
    items_table: str = ""
    text_column: str = "overview"
    image_dir: str = ""
    image_audit: str = ""
    min_rating: float = -1.0  # < 0: keep every rating (DatasetSpec.min_rating = None)
    kcore: int = 0
    synthetic_users: int = 600
    synthetic_items: int = 400
    data_seed: int = 0
    cache_dir: str = ""  # absolute path: every process (server, nodes) reads the same cache
    # model and federated training: the engine's own defaults (TrainSettings / FederatedConfig / LocalConfig)
    dim: int = TrainSettings.dim
    experts: int = 0  # experts of the MoE; 0 = the method's own number
    history: int = 0  # recent items that condition the MoE's user state (TrainSettings.history)
    client_fraction: float = 1.0  # users sampled per round, over all silos (the server draws them)
    negatives: int = FederatedConfig.n_negatives
    negatives_avoid_heldout: bool = FederatedConfig.negatives_avoid_heldout
    server_optimizer: str = FederatedConfig.server_optimizer
    server_lr: float = FederatedConfig.server_lr
    content_lr: float = FederatedConfig.content_lr
    id_shrink: float = FederatedConfig.id_shrink
    expertwise: bool = FederatedConfig.expertwise
    row_average: str = FederatedConfig.row_average
    max_cells: int = FederatedConfig.max_cells  # padded examples per batched chunk on a node
    lr_schedule: str = FederatedConfig.lr_schedule
    lr: float = LocalConfig.lr
    shared_lr: float = LocalConfig.shared_lr
    local_optimizer: str = LocalConfig.optimizer
    local_epochs: int = LocalConfig.local_epochs
    batch_size: int = LocalConfig.batch_size
    loss: str = LocalConfig.loss
    fedprox_mu: float = LocalConfig.proximal_mu
    weight_decay: float = LocalConfig.weight_decay
    row_optimizer: str = LocalConfig.row_optimizer
    row_lr: float = LocalConfig.row_lr
    # item features for content methods (server side only: nodes receive the item table)
    text_model: str = ""
    image_preset: str = "tiny"
    image_checkpoint: str = ""
    # Flower runtime
    min_nodes: int = 1  # the server waits for this many SuperNodes before round 1
    node_wait_timeout: float = 120.0  # seconds to wait for `min_nodes`
    round_timeout: float = 600.0  # seconds to wait for replies; a missing node is dropped from the round
    threads: int = 1  # torch threads in every Flower process (shared CPUs collapse with more)
    out_dir: str = ""  # where the ServerApp writes outcome-seed<seed>.json + best-seed<seed>.safetensors

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, object]) -> FlowerRunConfig:
        """Typed config from Flower's flat `run_config` (kebab-case keys); unknown keys are an error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise MmfedrecError(f"unknown run-config key {key!r}")
            default = fields[name].default
            values[name] = _coerce(key, value, type(default))
        return cls(**values)

    def to_run_config(self) -> dict[str, str | int | float | bool]:
        """The flat kebab-case mapping (for `--run-config` overrides and pyproject defaults)."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}

    def dataset_spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.dataset,
            root=_path(self.dataset_root),
            interactions_file=_path(self.interactions_file),
            items_file=_path(self.items_file),
            items_table=_path(self.items_table),
            text_column=self.text_column,
            image_dir=_path(self.image_dir),
            image_audit=_path(self.image_audit),
            min_rating=None if self.min_rating < 0 else self.min_rating,
            kcore=self.kcore,
            synthetic_users=self.synthetic_users,
            synthetic_items=self.synthetic_items,
            data_seed=self.data_seed,
            cache_dir=_path(self.cache_dir),
        )

    def train_settings(self) -> TrainSettings:
        local = LocalConfig(
            lr=self.lr,
            shared_lr=self.shared_lr,
            optimizer=self.local_optimizer,
            local_epochs=self.local_epochs,
            batch_size=self.batch_size,
            loss=self.loss,
            proximal_mu=self.fedprox_mu,
            weight_decay=self.weight_decay,
            row_optimizer=self.row_optimizer,
            row_lr=self.row_lr,
        )
        federated = FederatedConfig(
            rounds=self.num_server_rounds,
            client_fraction=self.client_fraction,
            engine="batched",
            n_negatives=self.negatives,
            negatives_avoid_heldout=self.negatives_avoid_heldout,
            server_optimizer=self.server_optimizer,
            server_lr=self.server_lr,
            content_lr=self.content_lr,
            id_shrink=self.id_shrink,
            expertwise=self.expertwise,
            row_average=self.row_average,
            max_cells=self.max_cells,
            lr_schedule=self.lr_schedule,
            local=local,
        )
        return TrainSettings(
            rounds=self.num_server_rounds,
            eval_every=self.eval_every,
            select_on=self.select_on,
            dim=self.dim,
            experts=self.experts,
            history=self.history,
            federated=federated,
        )

    def method_spec(self) -> MethodSpec:
        """The method; only federated methods that aggregate run on Flower."""
        method = method_spec(self.method)
        if method.kind != "federated" or not method.federate:
            raise MmfedrecError(f"method {self.method!r} is not a federated method that aggregates; run it in-process")
        return method

    def split(self) -> Split:
        """The leave-one-out split every process derives from the same data (cached when cache_dir is set)."""
        from mmfedrec.data.registry import prepare_split

        spec = self.dataset_spec()
        return prepare_split(spec, self.seed, self.eval_negatives, use_cache=spec.cache_dir is not None)

    @classmethod
    def from_parts(
        cls,
        method: str,
        dataset: DatasetSpec,
        settings: TrainSettings,
        seed: int,
        eval_negatives: int = 99,
        **runtime: object,
    ) -> FlowerRunConfig:
        """The run config for the same experiment the in-process engine runs from these parts."""
        if settings.patience:
            raise MmfedrecError("--patience is not supported on the Flower engines (every round runs)")
        federated, local = settings.federated, settings.federated.local
        return cls(
            method=method,
            seed=seed,
            num_server_rounds=settings.rounds,
            eval_every=settings.eval_every,
            select_on=settings.select_on,
            eval_negatives=eval_negatives,
            dataset=dataset.name,
            dataset_root=_text(dataset.root),
            interactions_file=_text(dataset.interactions_file),
            items_file=_text(dataset.items_file),
            items_table=_text(dataset.items_table),
            text_column=dataset.text_column,
            image_dir=_text(dataset.image_dir),
            image_audit=_text(dataset.image_audit),
            min_rating=-1.0 if dataset.min_rating is None else float(dataset.min_rating),
            kcore=dataset.kcore,
            synthetic_users=dataset.synthetic_users,
            synthetic_items=dataset.synthetic_items,
            data_seed=dataset.data_seed,
            cache_dir=_text(dataset.cache_dir),
            dim=settings.dim,
            experts=settings.experts,
            history=settings.history,
            client_fraction=federated.client_fraction,
            negatives=federated.n_negatives,
            negatives_avoid_heldout=federated.negatives_avoid_heldout,
            server_optimizer=federated.server_optimizer,
            server_lr=federated.server_lr,
            content_lr=federated.content_lr,
            id_shrink=federated.id_shrink,
            expertwise=federated.expertwise,
            row_average=federated.row_average,
            max_cells=federated.max_cells,
            lr_schedule=federated.lr_schedule,
            lr=local.lr,
            shared_lr=local.shared_lr,
            local_optimizer=local.optimizer,
            local_epochs=local.local_epochs,
            batch_size=local.batch_size,
            loss=local.loss,
            fedprox_mu=local.proximal_mu,
            weight_decay=local.weight_decay,
            row_optimizer=local.row_optimizer,
            row_lr=local.row_lr,
            **runtime,
        )


def _coerce(key: str, value: object, kind: type) -> object:
    if kind is bool:
        if not isinstance(value, bool):
            raise MmfedrecError(f"run-config {key!r} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise MmfedrecError(f"run-config {key!r} must be {kind.__name__}, got {value!r}")


def _path(text: str) -> Path | None:
    return Path(text) if text else None


def _text(path: Path | str | None) -> str:
    return "" if path is None else str(Path(path).resolve())
