"""Process-wide settings that entry points (CLI, Flower apps, Gradio, tests) apply once.

Library code never reads environment variables; entry points call `configure_runtime`.
"""

from __future__ import annotations

import contextlib
import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # no model download at run time: fail fast instead of retrying ~45 s
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "FLWR_TELEMETRY_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",  # tokenizer threads fight torch for the 2 cores
}


def default_threads() -> int:
    """Threads for torch: 1 when the machine is shared (CI, workers), else all cores.

    torch's default threading collapses (5-20x slower) when another process shares the cores,
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

    torch.set_num_threads(n_threads)
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # already set once in this process: keep the first setting
            torch.set_num_interop_threads(1)
    return n_threads
