"""A tiny trained run (session-scoped) and the app context built from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mmfedrec.cli import main

TINY = ["--synthetic-users", "60", "--synthetic-items", "50", "--eval-negatives", "20", "--quiet"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ours-id-only` trained for 2 rounds on a 60-user, 50-item synthetic set."""
    root = tmp_path_factory.mktemp("app-run")
    out = root / "run"
    argv = ["--threads", "1", "train", "--method", "ours-id-only", "--rounds", "2", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(root / "cache")]) == 0
    return out


@pytest.fixture(scope="session")
def context(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    from mmfedrec.app.context import load_context

    return load_context(tiny_run, work_dir=tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="session")
def augmented_context(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same run with saved pseudo-interactions (popularity augmenter, sparse_max 5)."""
    from safetensors.numpy import save_file

    from mmfedrec.app.context import load_context
    from mmfedrec.app.run_loader import PSEUDO_FILE, load_run
    from mmfedrec.generators import AugmentationPolicy, PopularityAugmenter

    folder = tmp_path_factory.mktemp("augmented") / "run"
    shutil.copytree(tiny_run, folder)
    split = load_run(folder).split
    pseudo = PopularityAugmenter().augment(split, AugmentationPolicy(sparse_max=5))
    assert len(pseudo) > 0, "the tiny run needs sparse clients"
    arrays = {"users": pseudo.users, "items": pseudo.items, "weights": pseudo.weights.astype(np.float32)}
    save_file(arrays, str(folder / PSEUDO_FILE))
    return load_context(folder, work_dir=tmp_path_factory.mktemp("tiles-aug"))


@pytest.fixture(scope="session")
def denoised_run(tiny_run: Path, context, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run with a saved diffusion denoiser (seeded, untrained), as `--augment diffusion` leaves one."""
    import torch

    from mmfedrec.app.handlers import DENOISER_FOLDER
    from mmfedrec.generators import ProfileDenoiser

    folder = tmp_path_factory.mktemp("denoised") / "run"
    shutil.copytree(tiny_run, folder)
    torch.manual_seed(0)
    ProfileDenoiser(context.run.split.n_items, hidden_dim=16).save_pretrained(folder / DENOISER_FOLDER)
    return folder


@pytest.fixture(scope="session")
def denoised_context(denoised_run: Path, tmp_path_factory: pytest.TempPathFactory):
    from mmfedrec.app.context import load_context

    return load_context(denoised_run, work_dir=tmp_path_factory.mktemp("tiles-denoised"))
