"""Dataset options shared by every subcommand, mapped once to a `DatasetSpec`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mmfedrec.data.spec import DATASET_NAMES, DatasetSpec


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--dataset", choices=DATASET_NAMES, default="synthetic", help="default: the embedded synthetic set"
    )
    group.add_argument("--root", type=Path, help="folder of a MovieLens release (u.data / ratings.dat)")
    group.add_argument("--interactions", type=Path, dest="interactions_file", help="csv/parquet interactions file")
    group.add_argument("--items", type=Path, dest="items_file", help="csv/parquet items file")
    group.add_argument("--items-table", type=Path, help="CSV keyed by item id with a text column (enrichment)")
    group.add_argument("--text-column", default="overview", help="enrichment column used as item text")
    group.add_argument("--image-dir", type=Path, help="folder of <item_id>.<ext> images (enrichment)")
    group.add_argument("--image-audit", type=Path, help="audit CSV: items whose auto_flag != ok lose their image")
    group.add_argument("--min-rating", type=float, default=None, help="implicit feedback: keep rating >= this")
    group.add_argument("--kcore", type=int_in(0, 10**6), default=0, help="k-core filtering (0 = off)")
    group.add_argument("--synthetic-users", type=int_in(1, 10**7), default=600)
    group.add_argument("--synthetic-items", type=int_in(1, 10**6), default=400)
    group.add_argument("--data-seed", type=int_in(0, 2**32 - 1), default=0)
    group.add_argument("--cache-dir", type=Path, default=Path(".cache/mmfedrec"), help="Parquet cache folder")


def dataset_spec(args: argparse.Namespace) -> DatasetSpec:
    return DatasetSpec(
        name=args.dataset,
        root=args.root,
        interactions_file=args.interactions_file,
        items_file=args.items_file,
        items_table=args.items_table,
        text_column=args.text_column,
        image_dir=args.image_dir,
        image_audit=args.image_audit,
        min_rating=args.min_rating,
        kcore=args.kcore,
        synthetic_users=args.synthetic_users,
        synthetic_items=args.synthetic_items,
        data_seed=args.data_seed,
        cache_dir=args.cache_dir,
    )


def int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value
