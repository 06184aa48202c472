"""Everything a trainer needs to continue a run exactly: tensors for safetensors, the rest as JSON.

Optimizer state (server Adam, content Adam, the central trainer's Adam) and random-generator
state are part of it: without them a resumed run would drift from an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def optimizer_tensors(optimizer: torch.optim.Optimizer | None, prefix: str) -> dict[str, Tensor]:
    """`prefix.<param index>.<key>` -> tensor for the optimizer's per-parameter state."""
    if optimizer is None:
        return {}
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).clone()
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer | None, tensors: dict[str, Tensor], prefix: str) -> None:
    if optimizer is None:
        return
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


def generator_state(rng: np.random.Generator) -> dict:
    """A numpy generator's state as JSON (PCG64's 128-bit ints as strings)."""
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }


def restore_generator(rng: np.random.Generator, saved: dict) -> None:
    rng.bit_generator.state = {
        "bit_generator": saved["bit_generator"],
        "state": {k: int(v) for k, v in saved["state"].items()},
        "has_uint32": saved["has_uint32"],
        "uinteger": saved["uinteger"],
    }
