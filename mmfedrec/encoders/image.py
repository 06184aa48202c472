"""Image tower inference: decode, preprocess and embed images with an open_clip visual tower."""

from __future__ import annotations

import numpy as np
import torch

from mmfedrec.encoders.factory import ClipEncoder


def load_images(paths: list[str], preprocess: object) -> tuple[torch.Tensor, np.ndarray]:
    """(N,) paths -> (N, 3, S, S) tensor and (N,) readable flags; an unreadable file is a masked image."""
    from PIL import Image, UnidentifiedImageError

    tensors: list[torch.Tensor | None] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                tensors.append(preprocess(image.convert("RGB")))
        except (OSError, UnidentifiedImageError, ValueError):
            tensors.append(None)
    ok = np.array([t is not None for t in tensors], dtype=bool)
    shape = next((t.shape for t in tensors if t is not None), None)
    if shape is None:
        return torch.zeros((len(paths), 0)), ok
    return torch.stack([t if t is not None else torch.zeros(shape) for t in tensors]), ok


def encode_images(
    encoder: ClipEncoder, paths: list[str], batch_size: int = 64, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) paths -> (N, D) unit-norm float32 features and (N,) readable flags (rows of unreadable files are 0)."""
    out = np.zeros((len(paths), encoder.image_dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    starts = range(0, len(paths), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="images", unit="batch")
    device = next(encoder.model.parameters()).device
    with torch.inference_mode():
        for start in starts:
            pixels, readable = load_images(paths[start : start + batch_size], encoder.preprocess)  # (b, 3, S, S)
            ok[start : start + len(readable)] = readable
            if not readable.any():
                continue
            features = encoder.model.encode_image(pixels[readable].to(device), normalize=True)  # (b', D)
            out[start : start + len(readable)][readable] = features.float().cpu().numpy()
    return out, ok
