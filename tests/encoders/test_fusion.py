from __future__ import annotations

import pytest
import torch

from mmfedrec.encoders.fusion import ConcatFusion, GatedFusion

FUSIONS = [GatedFusion, ConcatFusion]


def inputs(batch: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(batch, 12, generator=generator)  # (B, Dt)
    image = torch.randn(batch, 20, generator=generator)  # (B, Di)
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [0, 0], [1, 1], [1, 0]], dtype=torch.bool)[:batch]  # (B, 2)
    return text, image, mask


@pytest.mark.parametrize("fusion_cls", FUSIONS)
def test_output_shape_and_no_nan_with_missing_modalities(fusion_cls) -> None:
    torch.manual_seed(0)
    fusion = fusion_cls(12, 20, 8)
    text, image, mask = inputs()
    out = fusion(text, image, mask)
    assert out.shape == (6, 8)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters() if p.grad is not None)


@pytest.mark.parametrize("fusion_cls", FUSIONS)
def test_a_masked_modality_has_no_influence(fusion_cls) -> None:
    torch.manual_seed(0)
    fusion = fusion_cls(12, 20, 8)
    text, image, mask = inputs()
    before = fusion(text, image, mask)
    garbage_text = torch.where(mask[:, :1], text, torch.full_like(text, float("nan")))  # masked rows: NaN
    garbage_image = torch.where(mask[:, 1:], image, torch.randn_like(image) * 1e6)  # masked rows: huge noise
    after = fusion(garbage_text, garbage_image, mask)
    assert torch.equal(before, after)


@pytest.mark.parametrize("fusion_cls", FUSIONS)
def test_a_modality_absent_entirely(fusion_cls) -> None:
    torch.manual_seed(0)
    text, image, _ = inputs()
    text_only = fusion_cls(12, None, 8)
    assert text_only(text, None).shape == (6, 8)
    both = fusion_cls(12, 20, 8)
    no_images = both(text, None)  # configured but not given: every image is missing
    mask = torch.tensor([[True, False]] * 6)
    assert torch.equal(no_images, both(text, image, mask))


def test_gated_fusion_renormalises_over_present_modalities() -> None:
    """A text-only item is exactly its projected text: the gate gives the absent image no share."""
    torch.manual_seed(0)
    fusion = GatedFusion(12, 20, 8)
    text, image, mask = inputs()
    out = fusion(text, image, mask)
    text_only = mask[:, 0] & ~mask[:, 1]
    assert torch.allclose(out[text_only], fusion.projections.proj["text"](text[text_only]))
    nothing = ~mask.any(dim=1)
    assert torch.equal(out[nothing], fusion.no_content.expand(int(nothing.sum()), -1))
