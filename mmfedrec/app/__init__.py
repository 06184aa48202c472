"""Gradio demo of a trained run: recommend, search, new items, sparse clients, live training, the run's report.

`build_demo(context)` builds the Blocks; the handlers in `mmfedrec.app.handlers` are plain
functions of an `AppContext` (from `load_context(run_folder)`) that tests call directly.
Gradio loads only with `build_demo`; nothing here imports flwr.
"""

from __future__ import annotations

from mmfedrec._lazy import lazy_exports

_EXPORTS = {
    "AppContext": "mmfedrec.app.context",
    "load_context": "mmfedrec.app.context",
    "LoadedRun": "mmfedrec.app.run_loader",
    "load_run": "mmfedrec.app.run_loader",
    "build_demo": "mmfedrec.app.ui",
    "launch_options": "mmfedrec.app.ui",
    "train_live": "mmfedrec.app.training",
    "ensure_default_run": "mmfedrec.app.training",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
