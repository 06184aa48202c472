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
