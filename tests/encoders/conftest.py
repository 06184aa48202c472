"""Tiny real fixtures for encoder tests: a catalogue of coloured-square "posters" with matching texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmfedrec.data.types import Catalog, make_catalog

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_posters(folder: Path, n_items: int, seed: int = 0) -> Catalog:
    """Item i is a noisy square of one colour, and its text names that colour: a learnable image-text pairing."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    texts, paths = [], []
    for item in range(n_items):
        colour = names[item % len(names)]
        pixels = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{item}.png"
        Image.fromarray(pixels).save(path)
        texts.append(f"A film poster that is mostly {colour}.")
        paths.append(str(path))
    return make_catalog(np.arange(n_items), [f"item {i}" for i in range(n_items)], texts, paths)


@pytest.fixture(scope="session")
def poster_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return write_posters(tmp_path_factory.mktemp("posters"), n_items=36)


@pytest.fixture(scope="session")
def text_encoder():
    from mmfedrec.encoders.text import TextEncoder

    return TextEncoder.from_pretrained()


@pytest.fixture(scope="session")
def tiny_encoder():
    import torch

    from mmfedrec.encoders.factory import create_encoder

    torch.manual_seed(0)
    return create_encoder("tiny")
