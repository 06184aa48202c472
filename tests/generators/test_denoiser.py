from pathlib import Path

import torch

from mmfedrec.generators import ProfileDenoiser, sampling_scheduler, training_scheduler


def test_denoiser_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    torch.manual_seed(0)
    denoiser = ProfileDenoiser(profile_dim=12, hidden_dim=16, time_embed_dim=8)
    denoiser.save_pretrained(tmp_path)
    loaded = ProfileDenoiser.from_pretrained(tmp_path)
    assert loaded.config.profile_dim == 12 and loaded.config.hidden_dim == 16
    sample, condition = torch.randn(3, 12), torch.rand(3, 12)
    timesteps = torch.tensor([0, 500, 999])
    with torch.no_grad():
        assert torch.equal(denoiser(sample, timesteps, condition), loaded(sample, timesteps, condition))


def test_denoiser_accepts_a_scalar_timestep() -> None:
    denoiser = ProfileDenoiser(profile_dim=5, hidden_dim=8, time_embed_dim=4)
    assert denoiser(torch.randn(2, 5), torch.tensor(7), torch.zeros(2, 5)).shape == (2, 5)


def test_schedulers_predict_v_on_a_cosine_schedule_without_clipping() -> None:
    training = training_scheduler()
    sampling = sampling_scheduler(training)
    for scheduler in (training, sampling):
        assert scheduler.config.clip_sample is False
        assert scheduler.config.prediction_type == "v_prediction"
        assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert type(sampling).__name__ == "DDIMScheduler"
    sampling.set_timesteps(4)
    assert int(sampling.timesteps[0]) == 999  # trailing spacing: strength 1 starts from pure noise
