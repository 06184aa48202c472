"""Named JSON presets -> a CLIP-style model: open_clip image tower + pretrained MiniLM text tower.

Presets use open_clip's own config format (`{"model_cfg": ..., "preprocess_cfg": ...}`) and are
passed to `open_clip.CustomTextCLIP` directly rather than registered globally, so our `ViT-B-32`
does not shadow open_clip's. Why not `open_clip.create_model(pretrained=...)`: when it loads a
checkpoint it builds the HF text tower with random weights (`hf_model_pretrained=False`) and
expects the checkpoint to refill it; our checkpoints hold only what training changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfedrec.encoders.text import resolve_text_model
from mmfedrec.errors import MmfedrecError

RANDOM_INIT = "random-init"  # the honest name of an image tower nobody trained


def list_presets() -> list[str]:
    """Preset names, from the JSON files in `mmfedrec/encoders/presets/`."""
    folder = resources.files("mmfedrec.encoders") / "presets"
    return sorted(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))


def load_preset(preset: str) -> dict[str, Any]:
    """The preset's JSON (`description`, `model_cfg`, `preprocess_cfg`)."""
    if preset not in list_presets():
        raise MmfedrecError(f"unknown encoder preset {preset!r}; available: {', '.join(list_presets())}")
    path = resources.files("mmfedrec.encoders") / "presets" / f"{preset}.json"
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class ClipEncoder:
    """A CLIP-style model plus what is needed to feed it, and where its image weights came from."""

    model: nn.Module  # open_clip.CustomTextCLIP: .visual (image tower), .text (HFTextEncoder)
    preprocess: Any  # PIL image -> (3, S, S) tensor
    preset: str
    text_model: str  # local folder or Hub id of the text tower
    image_weights: str  # RANDOM_INIT, a checkpoint path, or "open_clip:<tag>"
    config: dict[str, Any] = field(default_factory=dict)  # the preset JSON as used

    @property
    def image_dim(self) -> int:
        return int(self.config["model_cfg"]["embed_dim"])

    @property
    def image_size(self) -> int:
        size = self.config["model_cfg"]["vision_cfg"]["image_size"]
        return int(size if isinstance(size, int) else size[0])


def create_encoder(
    preset: str,
    pretrained: str | None = None,
    *,
    text_model: str | Path | None = None,
    allow_download: bool = False,
) -> ClipEncoder:
    """Build the preset's model; `pretrained` is a local checkpoint (.safetensors, open_clip .pt/.bin) or a tag.

    The text tower always loads its pretrained weights from `text_model` (default: packaged
    MiniLM). A tag (e.g. `laion2b_s34b_b79k` for ViT-B-32) loads open_clip's image weights only;
    without `allow_download` it must already be in the local cache, so offline runs fail at once
    instead of retrying the Hub.
    """
    import open_clip

    config = load_preset(preset)
    preprocess_cfg = dict(config.get("preprocess_cfg", {}))
    checkpoint, image_weights = None, RANDOM_INIT
    if pretrained is not None and os.path.isfile(pretrained):
        checkpoint, image_weights = pretrained, str(Path(pretrained).resolve())
    elif pretrained is not None:  # a tag: resolve its file before building anything, so offline fails at once
        tag_cfg = open_clip.get_pretrained_cfg(preset, pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(preset)
            raise MmfedrecError(
                f"pretrained {pretrained!r} is neither a file nor an open_clip tag of {preset!r}; tags: {tags}"
            )
        checkpoint, image_weights = _fetch_tag(preset, pretrained, tag_cfg, allow_download), f"open_clip:{pretrained}"
        preprocess_cfg.update({k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg})

    model_cfg = json.loads(json.dumps(config["model_cfg"]))  # deep copy: the preset stays as written
    text_source = resolve_text_model(text_model or model_cfg["text_cfg"].get("hf_model_name"))
    model_cfg["text_cfg"]["hf_model_name"] = text_source
    model_cfg["text_cfg"]["hf_model_pretrained"] = True
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused BERT pooler weights are reported as UNEXPECTED
    try:
        model = open_clip.CustomTextCLIP(**model_cfg)
    except OSError as error:
        raise MmfedrecError(f"cannot load text model {text_source!r} (offline: give a local folder): {error}") from None
    if checkpoint is not None:
        load_image_checkpoint(model, checkpoint)
    model.eval()
    size = model.visual.image_size
    preprocess = open_clip.image_transform(
        size,
        is_train=False,
        mean=preprocess_cfg.get("mean"),
        std=preprocess_cfg.get("std"),
        resize_mode=preprocess_cfg.get("resize_mode"),
    )
    used = {**config, "model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    return ClipEncoder(model, preprocess, preset, text_source, image_weights, used)


def _fetch_tag(preset: str, tag: str, tag_cfg: dict[str, Any], allow_download: bool) -> str:
    """Path of a tag's weights from the Hugging Face cache; downloads only when allowed."""
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        raise MmfedrecError(f"open_clip tag {preset}/{tag} has no Hugging Face Hub entry; pass a local checkpoint file")
    from huggingface_hub import hf_hub_download

    repo_id, filename = os.path.split(hub)  # "org/repo/file.bin", or "org/repo/" for the default file names
    filenames = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    last_error: Exception | None = None
    for name in filenames:
        try:
            return hf_hub_download(repo_id, name, local_files_only=not allow_download)
        except Exception as error:
            last_error = error
    where = "is not in the local Hugging Face cache (offline)" if not allow_download else "could not be downloaded"
    raise MmfedrecError(f"open_clip weights {preset}/{tag} ({repo_id}) {where}: {type(last_error).__name__}")


def load_image_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load our safetensors checkpoint, or the image tower of a full open_clip checkpoint.

    Ours holds every tensor training changed; the text transformer may be absent because it is
    the frozen pretrained one already loaded. A full open_clip CLIP checkpoint has a different
    text tower, so only its `visual.*` tensors are used.
    """
    from open_clip.factory import load_state_dict

    try:
        state = load_state_dict(str(path), device="cpu")
    except Exception as error:
        raise MmfedrecError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    own_keys = set(model.state_dict())
    if not set(state) <= own_keys:
        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        if not visual:
            raise MmfedrecError(f"{path}: no image tower tensors (visual.*) for this preset")
        _load_strict(model.visual, visual, path)
        return
    missing = [k for k in own_keys - set(state) if not k.startswith("text.transformer.")]
    if missing:
        raise MmfedrecError(
            f"{path}: checkpoint lacks {len(missing)} tensors of this preset, e.g. {sorted(missing)[0]}"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise MmfedrecError(f"{path}: checkpoint does not fit this preset: {str(error).splitlines()[0]}") from None


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise MmfedrecError(f"{path}: image tower does not fit this preset: {str(error).splitlines()[0]}") from None
