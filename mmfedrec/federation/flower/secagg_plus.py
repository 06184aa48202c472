"""Secure aggregation on Flower with SecAgg+ (Bell et al., 2020): flwr's `SecAggPlusWorkflow` on
the server and its `secaggplus_mod` on the silos, so the masks come from a real key agreement
(Diffie-Hellman between nodes, seeds Shamir-shared to survive dropouts): the server learns the
sum over silos and nothing about one silo.

SecAgg+ clips each float to +-clipping_range and quantises it to `quantization_range` levels; our
sums need more precision than that gives. So a silo hands it exact integers: its clients'
`secure_vectors` summed in fixed point (int64 modulo 2^64, `secure_agg.encode_fixed`, as
in-process secure aggregation), then its `positives`, split into four 16-bit limbs. With
clipping_range 2^16 and quantization_range 2^17 the quantiser maps a limb v to v + 2^16
exactly, so the protocol's sum of limbs is exact; the server recombines the limb sums modulo
2^64 into the silos' exact fixed-point total. The legacy workflow runs one training round at a
time through `SumOfSilos`, a legacy strategy that only hands out the round's instructions and
keeps what the protocol aggregated.
"""

from __future__ import annotations

import flwr.compat.common.recorddict_compat as compat
import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import ServerConfig
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import LegacyContext
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from mmfedrec.federation.privacy.secure_agg import SCALE

LIMB_BITS = 16
LIMBS = 4  # 4 x 16 bits = one int64
CLIPPING_RANGE = 2**LIMB_BITS
QUANTIZATION_RANGE = 2 * CLIPPING_RANGE  # the quantiser is then v -> v + CLIPPING_RANGE, exact on integers
MODULUS_RANGE = 2**32  # sums of up to 2^15 silos' limbs fit


def to_limbs(fixed: np.ndarray) -> list[np.ndarray]:
    """(P,) int64 fixed-point values -> LIMBS arrays of 16-bit limbs (as float64, SecAgg+'s input)."""
    bits = fixed.view(np.uint64)
    mask = np.uint64(2**LIMB_BITS - 1)
    return [((bits >> np.uint64(LIMB_BITS * k)) & mask).astype(np.float64) for k in range(LIMBS)]


def from_limb_sums(limb_sums: list[np.ndarray]) -> np.ndarray:
    """The (P,) int64 sum of the silos' fixed-point values from the sums of their limbs (exact)."""
    total = np.zeros(len(limb_sums[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):  # wraps modulo 2^64, as the two's complement values do
        for k, limb_sum in enumerate(limb_sums):
            total += np.rint(limb_sum).astype(np.uint64) << np.uint64(LIMB_BITS * k)
    return total.view(np.int64)


def decode_total(total: np.ndarray) -> np.ndarray:
    """(P,) float64 values from their int64 fixed-point sum."""
    return total.astype(np.float64) / SCALE


class SumOfSilos(Strategy):
    """A legacy strategy for one SecAgg+ round: every connected node gets `fit_ins`; the mean of
    the masked limbs the protocol reconstructs comes back in each result's parameters."""

    def __init__(self, grid: Grid, fit_ins: FitIns) -> None:
        self.grid = grid
        self.fit_ins = fit_ins
        self.results: list[tuple[ClientProxy, FitRes]] = []
        self.failures: list = []

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager) -> list:
        run_id = self.grid.run.run_id
        return [(GridClientProxy(node, self.grid, run_id), self.fit_ins) for node in self.grid.get_node_ids()]

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple[None, dict]:
        self.results, self.failures = list(results), list(failures)
        return None, {}

    def initialize_parameters(self, client_manager) -> None:
        return None

    def configure_evaluate(self, server_round: int, parameters: Parameters, client_manager) -> list:
        return []

    def aggregate_evaluate(self, server_round: int, results: list, failures: list) -> tuple[None, dict]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> None:
        return None


def secagg_plus_round(
    grid: Grid,
    server_round: int,
    arrays: dict[str, np.ndarray],
    config: dict[str, bool | bytes | float | int | str],
    timeout: float | None = None,
) -> tuple[np.ndarray | None, list[dict]]:
    """One training round under SecAgg+: every node gets the global `arrays` and `config`; returns
    (the int64 fixed-point total over the silos that completed, or None when the protocol halted;
    each completed silo's metrics)."""
    names = list(arrays)
    parameters = ndarrays_to_parameters([arrays[name] for name in names])
    fit_ins = FitIns(parameters, {**config, "array-names": ",".join(names)})
    strategy = SumOfSilos(grid, fit_ins)
    base = Context(run_id=grid.run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(base, config=ServerConfig(num_rounds=1), strategy=strategy)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: server_round})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord([arrays[name] for name in names])
    workflow = SecAggPlusWorkflow(
        num_shares=1.0,  # every silo shares its keys with all others
        reconstruction_threshold=0.5,
        max_weight=1.0,  # each silo's weight is 1: the protocol averages, the server multiplies back
        clipping_range=float(CLIPPING_RANGE),
        quantization_range=QUANTIZATION_RANGE,
        modulus_range=MODULUS_RANGE,
        timeout=timeout,
    )
    workflow(grid, context)
    if not strategy.results:
        return None, []
    n_silos = len(strategy.results)
    mean_limbs = parameters_to_ndarrays(strategy.results[0][1].parameters)
    total = from_limb_sums([limb * n_silos for limb in mean_limbs])
    return total, [dict(fit_res.metrics) for _, fit_res in strategy.results]


def fit_request(msg: Message) -> tuple[dict[str, np.ndarray], dict]:
    """A silo's view of the round's instructions: the global arrays by name, and the config."""
    fit_ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    names = str(fit_ins.config["array-names"]).split(",")
    arrays = dict(zip(names, parameters_to_ndarrays(fit_ins.parameters), strict=True))
    return arrays, dict(fit_ins.config)


def fit_reply(msg: Message, fixed_total: np.ndarray, metrics: dict) -> Message:
    """A silo's reply to the masked-vector stage: its fixed-point total as limbs, weight 1."""
    fit_res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(to_limbs(fixed_total)), 1, metrics)
    return Message(compat.fitres_to_recorddict(fit_res, keep_input=True), reply_to=msg)
