"""Checkpoints as safetensors with JSON metadata, written atomically so a crash never leaves a
half-written file where a good one was, and read without pickle (loading cannot run code)."""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from mmfedrec.atomic import write_atomic
from mmfedrec.errors import MmfedrecError

META_KEY = "mmfedrec"  # the safetensors metadata entry holding the JSON-encoded `meta`


def save_checkpoint(path: Path, tensors: dict[str, Tensor], meta: dict[str, object]) -> None:
    """Write `tensors` and JSON-serialisable `meta` (round, RNG states, accountant, config hash) to `path`.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over `path`
    (atomic on POSIX): readers see the old checkpoint or the new one, never a mixture. Tensors
    must not share memory (clone views first).
    """
    from safetensors.torch import save

    payload = save(
        {name: tensor.detach().contiguous() for name, tensor in tensors.items()}, {META_KEY: json.dumps(meta)}
    )
    write_atomic(path, payload, durable=True)


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, object]]:
    """(tensors, meta) from a checkpoint written by `save_checkpoint`; anything else is a
    `MmfedrecError` naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MmfedrecError(f"{path}: checkpoint not found")
    try:
        with safe_open(path, framework="pt") as file:
            meta = (file.metadata() or {}).get(META_KEY)
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 (not a dict)
        if meta is None:
            raise ValueError(f"no {META_KEY!r} metadata; not written by mmfedrec")
        return tensors, json.loads(meta)
    except Exception as error:  # safetensors raises its own error type, or ValueError/UnicodeError on garbage
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MmfedrecError(f"{path}: not a readable safetensors checkpoint ({problem})") from None
