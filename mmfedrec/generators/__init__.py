"""Generative augmentation for sparse clients: a diffusion denoiser over preference profiles,
its federated training, augmenters and inspection of what they synthesize.

Submodules that need diffusers load on first attribute access, so `import mmfedrec.generators`
stays light.
"""

from __future__ import annotations

from mmfedrec._lazy import lazy_exports

_EXPORTS = {
    "AugmentationPolicy": "mmfedrec.generators.policy",
    "PseudoInteractions": "mmfedrec.generators.policy",
    "make_sparse": "mmfedrec.generators.sparse_clients",
    "hold_out_clients": "mmfedrec.generators.sparse_clients",
    "joining_split": "mmfedrec.generators.sparse_clients",
    "Augmenter": "mmfedrec.generators.augmenters",
    "NoAugmenter": "mmfedrec.generators.augmenters",
    "PopularityAugmenter": "mmfedrec.generators.augmenters",
    "ItemKNNAugmenter": "mmfedrec.generators.augmenters",
    "augmenter_from_name": "mmfedrec.generators.augmenters",
    "DiffusionAugmenter": "mmfedrec.generators.augmenters.diffusion",
    "DiffusionAugmenterConfig": "mmfedrec.generators.augmenters.diffusion",
    "ProfileDenoiser": "mmfedrec.generators.denoiser",
    "ProfileSpace": "mmfedrec.generators.profiles",
    "ProfileSynthesizer": "mmfedrec.generators.synthesizer",
    "training_scheduler": "mmfedrec.generators.scheduling",
    "sampling_scheduler": "mmfedrec.generators.scheduling",
    "FederatedDenoiserConfig": "mmfedrec.generators.federated",
    "train_federated": "mmfedrec.generators.federated",
    "CentralDenoiserConfig": "mmfedrec.generators.central",
    "train_central": "mmfedrec.generators.central",
    "ClientSynthesis": "mmfedrec.generators.inspection",
    "synthesize_for_client": "mmfedrec.generators.inspection",
    "synth_report": "mmfedrec.generators.inspection",
    "write_synth_report": "mmfedrec.generators.inspection",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
