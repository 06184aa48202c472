"""The configuration tree (`tree`), its written forms (`codec`) and its command-line flags (`arguments`).

Importing this package never imports torch: the CLI parses and validates settings before any
heavy stack loads.
"""

from mmfedrec.config.tree import (
    AugmentConfig,
    CompressionConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    FeatureConfig,
    FederatedConfig,
    FlowerConfig,
    LocalConfig,
    ModelConfig,
    PrivacyConfig,
    RobustConfig,
    RunConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "CompressionConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "FeatureConfig",
    "FederatedConfig",
    "FlowerConfig",
    "LocalConfig",
    "ModelConfig",
    "PrivacyConfig",
    "RobustConfig",
    "RunConfig",
    "TrainConfig",
]
