"""The stock diffusers schedules the denoiser is trained and sampled with.

v-prediction on a cosine schedule ("squaredcos_cap_v2") stays stable on profile data where
epsilon-prediction diverged; profiles are unbounded (projected features), so no sample clipping.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler


def training_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The DDPM schedule used for `add_noise` / `get_velocity` during training."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
        timestep_spacing="trailing",
    )


def sampling_scheduler(training: DDPMScheduler) -> DDIMScheduler:
    """A deterministic DDIM scheduler on the same schedule, for sampling in a few steps."""
    return DDIMScheduler.from_config(training.config)
