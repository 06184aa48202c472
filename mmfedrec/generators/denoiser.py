"""A DiffRec-style MLP denoiser over user preference profiles (Wang et al., 2023, "Diffusion Recommender Model").

The model only predicts; the noise schedule is a stock diffusers scheduler and the sampling loop
lives in `ProfileSynthesizer`, so model, schedule and loop can be swapped independently.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


class ProfileDenoiser(ModelMixin, ConfigMixin):
    """Predicts the diffusion target (v) for a noised profile x_t, given t and the observed history.

    The constructor arguments are the config, so `save_pretrained`/`from_pretrained` round-trip it.

    Args:
        profile_dim: length P of a profile: the number of items, or the item-feature dimension
            when profiles are projected into the item-embedding space.
        hidden_dim: width of the MLP; it sets the per-client update size in federated training.
        time_embed_dim: width of the sinusoidal timestep features before their projection.
        condition_dim: length of the condition (`ProfileSpace.condition_dim`); None = profile_dim.
    """

    @register_to_config
    def __init__(
        self, profile_dim: int, hidden_dim: int = 128, time_embed_dim: int = 64, condition_dim: int | None = None
    ) -> None:
        super().__init__()
        self.time_proj = Timesteps(time_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(time_embed_dim, hidden_dim)
        self.sample_in = nn.Linear(profile_dim, hidden_dim)
        self.condition_in = nn.Linear(condition_dim or profile_dim, hidden_dim, bias=False)
        self.mid = nn.Linear(hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, profile_dim)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Model output for `sample` (B, P) at `timestep` (B,) or scalar, given `condition` (B, C)."""
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])  # (B,)
        time_features = self.time_proj(timesteps).to(sample.dtype)  # (B, time_embed_dim)
        hidden = self.sample_in(sample) + self.condition_in(condition) + self.time_embedding(time_features)  # (B, H)
        hidden = nn.functional.silu(hidden)
        hidden = hidden + nn.functional.silu(self.mid(hidden))  # (B, H)
        return self.out(hidden)  # (B, P)
