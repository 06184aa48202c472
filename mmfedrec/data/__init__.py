"""Datasets as a validated `Catalog` + `Interactions`, their splits and client partitions."""

from mmfedrec.config.tree import DATASET_NAMES, DataConfig
from mmfedrec.data.registry import load_dataset, prepare_split
from mmfedrec.data.splits import Split
from mmfedrec.data.types import Catalog, Dataset, Interactions

__all__ = [
    "DATASET_NAMES",
    "Catalog",
    "DataConfig",
    "Dataset",
    "Interactions",
    "Split",
    "load_dataset",
    "prepare_split",
]
