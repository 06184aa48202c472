from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from mmfedrec.encoders.factory import RANDOM_INIT, create_encoder, list_presets, load_preset
from mmfedrec.errors import MmfedrecError


def test_presets_are_discovered_from_json() -> None:
    assert {"tiny", "ViT-B-32"} <= set(list_presets())
    assert load_preset("ViT-B-32")["model_cfg"]["vision_cfg"]["patch_size"] == 32


def test_unknown_preset_names_the_available_ones() -> None:
    with pytest.raises(MmfedrecError, match="tiny"):
        load_preset("no-such-preset")


def test_tiny_image_tower_shape_and_honest_weights(tiny_encoder) -> None:
    pixels = torch.randn(3, 3, tiny_encoder.image_size, tiny_encoder.image_size)  # (B, 3, S, S)
    with torch.no_grad():
        features = tiny_encoder.model.encode_image(pixels, normalize=True)
    assert features.shape == (3, tiny_encoder.image_dim)
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert tiny_encoder.image_weights == RANDOM_INIT


def test_clip_text_tower_holds_the_pretrained_minilm_weights(tiny_encoder, text_encoder) -> None:
    """open_clip's HFTextEncoder must load MiniLM from the local folder, not initialise it randomly."""
    ours = tiny_encoder.model.text.transformer.state_dict()
    reference = text_encoder.transformer.state_dict()
    assert set(ours) == set(reference)
    assert all(torch.equal(ours[name], reference[name]) for name in reference)


def test_offline_tag_fails_fast_with_a_clear_message() -> None:
    start = time.perf_counter()
    with pytest.raises(MmfedrecError, match="not in the local Hugging Face cache"):
        create_encoder("ViT-B-32", "laion2b_s34b_b79k")
    assert time.perf_counter() - start < 5.0


def test_unknown_tag_lists_the_known_ones() -> None:
    with pytest.raises(MmfedrecError, match="laion2b_s34b_b79k"):
        create_encoder("ViT-B-32", "not-a-tag")


def test_importing_the_package_stays_light() -> None:
    code = "import sys, mmfedrec.encoders; print(any(m in sys.modules for m in ('torch', 'open_clip', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
