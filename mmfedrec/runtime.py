"""Process-wide settings that entry points (CLI, Flower apps, Gradio, tests) apply once.

Library code never reads environment variables; entry points call `configure_runtime`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # no model download at run time: fail fast instead of retrying
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "FLWR_TELEMETRY_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",  # tokenizer threads fight torch for the 2 cores
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # weight-loading bars filled every log; our own work shows progress
}


def default_threads() -> int:
    """Threads for torch: 1 when the machine is shared (CI, workers), else all cores.

    torch's default threading collapses (several times slower) when another process shares the cores,
    so shared contexts set MMFEDREC_THREADS=1 (CI does) or run inside a worker.
    """
    configured = os.environ.get("MMFEDREC_THREADS")
    if configured:
        return max(1, int(configured))
    if os.environ.get("CI"):
        return 1
    return max(1, os.cpu_count() or 1)


def configure_runtime(threads: int | None = None) -> int:
    """Set offline/telemetry environment and torch's thread count; return the thread count."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    n_threads = threads if threads is not None else default_threads()
    os.environ["OMP_NUM_THREADS"] = str(n_threads)
    import torch

    keep_freed_memory()
    torch.set_num_threads(n_threads)
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # already set once in this process: keep the first setting
            torch.set_num_interop_threads(1)
    return n_threads


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks up to 1 GiB instead of returning them to the kernel.

    A federated round allocates and frees tens of MB of example tensors per chunk; by default
    glibc maps and unmaps each (pages faulted in and zeroed every time), a visible share of an
    ML-100K round. Returns False where glibc is absent.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    except (OSError, AttributeError):  # not glibc (musl, macOS): keep the allocator's defaults
        return False
