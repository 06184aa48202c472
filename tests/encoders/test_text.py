from __future__ import annotations

import numpy as np


def test_similar_sentences_are_closer_than_unrelated_ones(text_encoder) -> None:
    embeddings = text_encoder.encode(
        [
            "A detective hunts a serial killer in the city.",
            "A police inspector tracks down a murderer.",
            "A recipe for lemon cake with fresh berries.",
        ]
    )  # (3, 384)
    assert embeddings.shape == (3, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_length_batching_keeps_the_input_order(text_encoder) -> None:
    texts = ["short", "a much longer sentence about a space adventure with robots and aliens", "medium length text"]
    together = text_encoder.encode(texts, batch_size=2)
    one_by_one = np.concatenate([text_encoder.encode([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_bf16_embeddings_match_fp32(text_encoder) -> None:
    from mmfedrec.encoders.text import TextEncoder

    texts = [
        "Toy Story. A cowboy doll is threatened by a new spaceman toy.",
        "GoldenEye. James Bond stops a satellite.",
    ]
    fp32 = TextEncoder(text_encoder.transformer, text_encoder.tokenizer, precision="fp32")
    bf16 = TextEncoder(text_encoder.transformer, text_encoder.tokenizer, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.999


def test_auto_precision_falls_back_to_fp32_without_native_bf16(monkeypatch) -> None:
    from mmfedrec.encoders import text

    monkeypatch.setattr(text, "cpu_has_native_bf16", lambda: False)
    assert text.resolve_text_precision("auto") == "fp32"
    monkeypatch.setattr(text, "cpu_has_native_bf16", lambda: True)
    assert text.resolve_text_precision("auto") == "bf16"
    assert text.resolve_text_precision("auto", "cuda") == "fp32"  # autocast bf16 is a CPU speed-up here
    assert text.resolve_text_precision("fp32") == "fp32" and text.resolve_text_precision("bf16") == "bf16"


def test_unknown_precision_names_the_allowed_ones(text_encoder) -> None:
    import pytest

    from mmfedrec.encoders.text import TextEncoder
    from mmfedrec.errors import MmfedrecError

    with pytest.raises(MmfedrecError, match="auto, fp32, bf16"):
        TextEncoder(text_encoder.transformer, text_encoder.tokenizer, precision="fp16")


def test_max_length_none_is_the_models_own_limit(text_encoder) -> None:
    from mmfedrec.encoders.text import TextEncoder, model_max_length, packaged_text_model

    assert text_encoder.max_length == 256  # sentence_bert_config.json, not the tokenizer's 512
    assert model_max_length(packaged_text_model()) == 256
    assert TextEncoder(text_encoder.transformer, text_encoder.tokenizer).max_length == 256
    assert TextEncoder(text_encoder.transformer, text_encoder.tokenizer, max_length=32).max_length == 32
