"""Profile completion by partial diffusion (the img2img recipe of SDEdit, Meng et al., 2022).

The observed sparse profile is noised part-way (`strength`) and denoised with DDIM while the
denoiser is conditioned on the observed history; the clean profile it lands on scores every item.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from mmfedrec.errors import MmfedrecError
from mmfedrec.generators.denoiser import ProfileDenoiser
from mmfedrec.generators.profiles import ProfileSpace


class ProfileSynthesizer:
    """Denoiser + scheduler + the sampling loop, written out like a diffusers pipeline."""

    def __init__(self, denoiser: ProfileDenoiser, scheduler: DDIMScheduler, space: ProfileSpace) -> None:
        expected = (denoiser.config.profile_dim, denoiser.config.condition_dim or denoiser.config.profile_dim)
        if expected != (space.dim, space.condition_dim):
            raise MmfedrecError(
                f"denoiser expects profiles and conditions of length {expected}, the space has "
                f"{(space.dim, space.condition_dim)} (condition features given or not as in training?)"
            )
        self.denoiser = denoiser
        self.scheduler = scheduler
        self.space = space

    @torch.no_grad()
    def __call__(
        self,
        histories: torch.Tensor,
        strength: float = 0.8,
        num_inference_steps: int = 20,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Complete each observed history (B, I) and return item scores (B, I) in [0, 1].

        Args:
            strength: how far to noise the observed profile, in (0, 1]: 1 starts from pure noise
                (generation guided only by the condition), small values stay close to the history.
            num_inference_steps: DDIM steps over the whole schedule; about strength * this many run.
        """
        if not 0.0 < strength <= 1.0:
            raise MmfedrecError(f"strength must be in (0, 1], got {strength}")
        self.scheduler.set_timesteps(num_inference_steps)
        init_steps = min(max(int(num_inference_steps * strength), 1), num_inference_steps)
        timesteps = self.scheduler.timesteps[num_inference_steps - init_steps :]

        condition = self.space.condition(histories)  # (B, P)
        observed = self.space.target(histories)  # (B, P)
        noise = torch.randn(observed.shape, generator=generator)
        latents = self.scheduler.add_noise(observed, noise, timesteps[:1])  # (B, P)
        for t in timesteps:
            model_output = self.denoiser(latents, t, condition)
            latents = self.scheduler.step(model_output, t, latents).prev_sample
        return self.space.confidence(latents)  # (B, I)
