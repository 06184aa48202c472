"""Smaller MovieLens-100K sets, to check the data-read client steps away from the full set.

    python benchmarks/movielens_subsets.py --ml ../shared/data/ml-100k --users 0.3 --out /tmp/ml30
    python benchmarks/movielens_subsets.py --ml ../shared/data/ml-100k --first 12 --out /tmp/mlfirst12
    python benchmarks/movielens_subsets.py --ml ../shared/data/ml-100k --drop-top 300 --out /tmp/mlnotop300

`--users F` keeps a seeded fraction F of the users with all their ratings (fewer clients per item,
the same history per client); `--first K` keeps every user's K earliest ratings (shorter histories,
the same users); `--drop-top N` removes the N most-rated movies, then the users left with fewer
than `MIN_RATINGS` (a flatter popularity, shorter histories). Writes <out>/interactions.csv
(user_id,item_id,timestamp,rating), which `mmfedrec train --dataset csv --interactions
<out>/interactions.csv` reads, and prints the medians of training interactions per user and per
item that the steps could be read from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.atomic import write_atomic
from mmfedrec.cli.options import int_in
from mmfedrec.config.tree import DataConfig
from mmfedrec.data.movielens import RATING_COLUMNS
from mmfedrec.data.registry import prepare_split
from mmfedrec.data.tabular import read_delimited
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.local.auto_steps import median_client_interactions

MIN_RATINGS = 5  # a user left with fewer after --drop-top is dropped: leave-one-out needs a history


def subset(
    ratings: pd.DataFrame, users: float | None, first: int | None, drop_top: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """The ratings of a seeded fraction `users` of the users, each user's `first` earliest ones, or
    those left without the `drop_top` most-rated movies."""
    if drop_top is not None:
        top = ratings["item_id"].value_counts().index[:drop_top]
        rest = ratings[~ratings["item_id"].isin(top)]
        return rest[rest.groupby("user_id")["item_id"].transform("size") >= MIN_RATINGS]
    if users is not None:
        everyone = ratings["user_id"].unique()
        kept = np.random.default_rng(seed).permutation(everyone)[: int(len(everyone) * users)]
        return ratings[ratings["user_id"].isin(kept)]
    ordered = ratings.sort_values(["user_id", "timestamp", "item_id"])
    return ordered.groupby("user_id").head(first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml", type=Path, required=True, help="folder of MovieLens-100K (u.data)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--users", type=float, help="fraction (0-1] of the users kept, with all their ratings")
    which.add_argument("--first", type=int_in(1, 10**6), help="each user's earliest ratings kept")
    which.add_argument("--drop-top", type=int_in(1, 10**6), help="the most-rated movies removed")
    parser.add_argument("--out", type=Path, required=True, help="folder for interactions.csv")
    args = parser.parse_args()
    if args.users is not None and not 0 < args.users <= 1:
        parser.error(f"--users: expected a fraction in (0, 1], got {args.users}")
    try:
        ratings = read_delimited(args.ml / "u.data", RATING_COLUMNS, sep="\t")  # names the bad line
        kept = subset(ratings, args.users, args.first, args.drop_top)
        args.out.mkdir(parents=True, exist_ok=True)
        columns = ["user_id", "item_id", "timestamp", "rating"]
        write_atomic(args.out / "interactions.csv", kept[columns].to_csv(index=False))
        split = prepare_split(DataConfig(dataset="csv", interactions=args.out / "interactions.csv", cache_dir=None), 0)
    except MmfedrecError as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"{split.n_users} users, {split.n_items} items; median training interactions per user "
        f"{median_client_interactions(split):g}, per item {np.median(split.item_counts()):g}"
    )


if __name__ == "__main__":
    main()
