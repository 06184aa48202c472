"""How much can augmentation give a made-sparse client at most? The ceiling of the generators table.

Under the sparse protocol (half of the eligible clients cut to their 5 most recent training
events), a perfect generator would give each cut client back exactly the events it lost. This
measures, with the method's defaults and the same seeds as `augmentation_table.py`:
- `cut`: no augmentation (the table's baseline);
- `uncut`: the same clients keep their whole history (real events, in time order);
- `oracle own` / `oracle all`: the lost events handed back as pseudo-positives of weight 1,
  training the client's own state only (`--pseudo-trains own`, the default) or also the shared
  model and item vectors (`all`);
- per augmenter, the share of its pseudo-items that are events the client lost (seed 0).

    python benchmarks/augmentation_ceiling.py --root ../shared/data/ml-100k \\
        --posters ../shared/data/ml-100k-posters-tmdb --hm ../shared/data/hm-fashion-sample \\
        --out runs/bench-augment-ceiling

Writes <out>/ceiling.md (test NDCG@10, sampled, of the cut clients and of the others).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from train_runs import add_real_data_arguments, real_datasets, write_table

from mmfedrec.config.arguments import add_config_arguments, resolve_config
from mmfedrec.config.codec import with_settings
from mmfedrec.config.methods import method_spec
from mmfedrec.config.tree import RunConfig
from mmfedrec.data.registry import load_dataset
from mmfedrec.experiment import augment, load_features, run_split
from mmfedrec.federation.engines.runner import train_seed

AUGMENTERS = ("popularity", "item-knn", "diffusion")


def config_from_flags(flags: list[str]) -> RunConfig:
    """The configuration `mmfedrec train` would run with these flags."""
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return resolve_config(parser.parse_args(flags))


def lost_events(config: RunConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the training events the sparse protocol cut for `seed`."""
    cut, _ = run_split(config, seed)
    full, _ = run_split(with_settings(config, sparse_fraction=0.0), seed)
    kept = set(zip(cut.train_users.tolist(), cut.train_items.tolist(), strict=True))
    pairs = [p for p in zip(full.train_users.tolist(), full.train_items.tolist(), strict=True) if p not in kept]
    users, items = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    return users, items


def cell(config: RunConfig, features, variant: str, seeds: list[int]) -> tuple[float, float]:
    """Mean test NDCG@10 over `seeds` of the cut clients and of the others, for one variant."""
    method = method_spec(config.method)
    values = []
    for seed in seeds:
        split, groups = run_split(config, seed)
        pseudo = None
        if variant == "uncut":
            split, _ = run_split(with_settings(config, sparse_fraction=0.0), seed)
        elif variant.startswith("oracle"):
            users, items = lost_events(config, seed)
            pseudo = (users, items, np.ones(len(users), np.float32))
            config_seed = with_settings(config, pseudo_trains=variant.split()[1])
        outcome = train_seed(method, split, features, config_seed if pseudo else config, seed, groups, pseudo)
        values.append([outcome.test["buckets"][g]["sampled"]["ndcg@10"] for g in ("sparse", "dense")])
    sparse, dense = np.mean(values, axis=0)
    return float(sparse), float(dense)


def recovered(config: RunConfig, features, name: str) -> float:
    """The share of an augmenter's pseudo-items (seed 0, cut clients) that are events the client lost."""
    seed = config.seeds[0]
    split, groups = run_split(config, seed)
    users, items, _ = augment(split, with_settings(config, augment=name).augment, features, None, False)
    lost = set(zip(*(a.tolist() for a in lost_events(config, seed)), strict=True))
    mine = np.isin(users, groups["sparse"])
    return float(np.mean([p in lost for p in zip(users[mine].tolist(), items[mine].tolist(), strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_real_data_arguments(parser)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-augment-ceiling"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = real_datasets(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = ["| data | variant | cut clients NDCG@10 | vs cut | other clients NDCG@10 |", "|---|---|---|---|---|"]
    for label, data_flags in datasets.items():
        config = config_from_flags(
            [*data_flags, "--seeds", args.seeds, "--sparse-fraction", "0.5", "--sparse-max", "5"]
        )
        features = load_features(config, load_dataset(config.data).catalog, False)
        baseline = None
        for variant in ("cut", "uncut", "oracle own", "oracle all"):
            sparse, dense = cell(config, features, variant, seeds)
            baseline = baseline or sparse
            rows.append(f"| {label} | {variant} | {sparse:.4f} | {100 * (sparse / baseline - 1):+.1f}% | {dense:.4f} |")
            print(rows[-1], flush=True)
        for name in AUGMENTERS:
            rows.append(
                f"| {label} | {name}: pseudo-items that are lost events | {recovered(config, features, name):.3f} | | |"
            )
            print(rows[-1], flush=True)
        write_table(args.out / "ceiling.md", rows, [" ".join(["python", *sys.argv])])


if __name__ == "__main__":
    main()
