"""Privacy for client uploads: client-level differential privacy and secure aggregation.

- `dp`: DP-FedAvg (McMahan et al., 2018): clip each client's update, add Gaussian noise to the
  sum, account the privacy spent with opacus' RDP accountant;
- `secure_agg`: pairwise additive masking (Bonawitz et al., 2017): the server learns only the sum.
"""

from mmfedrec.federation.privacy.dp import (
    PrivacyAccountant,
    add_gaussian_noise,
    clip_per_client,
    flatten_updates,
    noise_multiplier_for,
    unflatten,
)
from mmfedrec.federation.privacy.secure_agg import dropout_correction, mask_updates, masked_total, unmask_sum

__all__ = [
    "PrivacyAccountant",
    "add_gaussian_noise",
    "clip_per_client",
    "dropout_correction",
    "flatten_updates",
    "mask_updates",
    "masked_total",
    "noise_multiplier_for",
    "unflatten",
    "unmask_sum",
]
