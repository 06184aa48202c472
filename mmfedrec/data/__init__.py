"""Datasets as a validated `Catalog` + `Interactions`, their splits and client partitions."""

from mmfedrec.data.registry import load_dataset, prepare_split
from mmfedrec.data.spec import DATASET_NAMES, DatasetSpec
from mmfedrec.data.splits import Split
from mmfedrec.data.types import Catalog, Dataset, Interactions

__all__ = [
    "DATASET_NAMES",
    "Catalog",
    "Dataset",
    "DatasetSpec",
    "Interactions",
    "Split",
    "load_dataset",
    "prepare_split",
]
