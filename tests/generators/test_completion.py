import numpy as np
import torch

from mmfedrec.data.splits import Split
from mmfedrec.generators import (
    AugmentationPolicy,
    DiffusionAugmenter,
    DiffusionAugmenterConfig,
    FederatedDenoiserConfig,
    augmenter_from_name,
    make_sparse,
)


def _held_out_rank(scores: np.ndarray, split: Split, users: np.ndarray) -> float:
    """Mean fraction of unseen items ranked above each user's valid and test items (0.5 = chance)."""
    fractions = []
    for row, user in enumerate(users):
        unseen = np.setdiff1d(np.arange(split.n_items), split.train_items[split.train_users == user])
        for item in (split.valid_items[user], split.test_items[user]):
            fractions.append(float((scores[row, unseen] > scores[row, item]).mean()))
    return float(np.mean(fractions))


def test_diffusion_completes_planted_profiles_and_never_peeks(split: Split) -> None:
    sparse_split, chosen = make_sparse(split, 0.5, 2, seed=0)
    config = DiffusionAugmenterConfig(
        hidden_dim=32, federated=FederatedDenoiserConfig(rounds=150, server_lr=1e-2, views_per_client=4)
    )
    augmenter = DiffusionAugmenter(config)
    policy = AugmentationPolicy(sparse_max=2, n_pseudo=4)
    pseudo = augmenter.augment(sparse_split, policy)
    assert augmenter.training_losses[-1] < augmenter.training_losses[0]
    assert set(pseudo.users.tolist()) == set(chosen.tolist())
    seen = set(zip(sparse_split.train_users.tolist(), sparse_split.train_items.tolist(), strict=True))
    assert not any((u, i) in seen for u, i in zip(pseudo.users.tolist(), pseudo.items.tolist(), strict=True))
    # 18 unseen items, 8 of them in the user's block (6 cut by make_sparse + valid + test): knowing the
    # block ranks held-out items at about 3.5/18 = 0.19 on average; chance is 0.5
    assert _held_out_rank(augmenter.scores(sparse_split, chosen), sparse_split, chosen) < 0.3
    assert ((pseudo.items // 10) == (pseudo.users % 2)).mean() > 0.9


def test_multi_step_partial_sampling_runs(split: Split) -> None:
    sparse_split, chosen = make_sparse(split, 0.5, 2, seed=0)
    config = DiffusionAugmenterConfig(
        hidden_dim=16, federated=FederatedDenoiserConfig(rounds=2), strength=0.6, num_inference_steps=5
    )
    scores = DiffusionAugmenter(config).fit(sparse_split, AugmentationPolicy(sparse_max=2)).scores(sparse_split, chosen)
    assert scores.shape == (len(chosen), split.n_items) and np.isfinite(scores).all()


def test_profiles_projected_into_item_features_complete_the_block(split: Split) -> None:
    sparse_split, _ = make_sparse(split, 0.5, 2, seed=0)
    features = torch.zeros(20, 2)
    features[:10, 0] = features[10:, 1] = 1.0  # one feature direction per planted block
    config = DiffusionAugmenterConfig(hidden_dim=16, federated=FederatedDenoiserConfig(rounds=60, server_lr=1e-2))
    augmenter = augmenter_from_name("diffusion", features.numpy(), config=config)
    pseudo = augmenter.augment(sparse_split, AugmentationPolicy(sparse_max=2, n_pseudo=3))
    assert augmenter.synthesizer.denoiser.config.profile_dim == 2
    assert ((pseudo.items // 10) == (pseudo.users % 2)).mean() > 0.9


def test_a_denoiser_conditioned_on_item_features_completes_the_block(split: Split) -> None:
    sparse_split, chosen = make_sparse(split, 0.5, 2, seed=0)
    features = torch.zeros(20, 2)
    features[:10, 0] = features[10:, 1] = 1.0  # what the items are: one direction per planted block
    config = DiffusionAugmenterConfig(
        hidden_dim=32, federated=FederatedDenoiserConfig(rounds=150, server_lr=1e-2, views_per_client=4)
    )
    augmenter = DiffusionAugmenter(config, condition_features=features)
    pseudo = augmenter.augment(sparse_split, AugmentationPolicy(sparse_max=2, n_pseudo=4))
    assert augmenter.synthesizer.denoiser.config.condition_dim == 22  # 20 items + 2 feature dimensions
    assert augmenter.synthesizer.space.condition(torch.eye(20)[:1]).shape == (1, 22)
    assert ((pseudo.items // 10) == (pseudo.users % 2)).mean() > 0.9
    assert _held_out_rank(augmenter.scores(sparse_split, chosen), sparse_split, chosen) < 0.3
