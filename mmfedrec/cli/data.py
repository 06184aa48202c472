"""`mmfedrec data stats|prepare`: look at a dataset, and cache it with its splits before training."""

from __future__ import annotations

import argparse
import json

from mmfedrec.config.arguments import add_config_arguments, resolve_config, section_from_args

STAT_LABELS = {
    "users": "users",
    "items": "items (with interactions)",
    "interactions": "interactions",
    "items_with_text": "items with text",
    "items_with_image": "items with image",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect and prepare datasets")
    commands = parser.add_subparsers(dest="data_command", required=True)

    stats = commands.add_parser("stats", help="counts of users, items, interactions and modalities")
    add_config_arguments(stats, ("data",))
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    stats.set_defaults(func=run_stats)

    prepare = commands.add_parser("prepare", help="load, cache the dataset and its leave-one-out splits")
    add_config_arguments(prepare, ("", "data", "eval"))
    prepare.set_defaults(func=run_prepare)


def run_stats(args: argparse.Namespace) -> int:
    from mmfedrec.data.registry import load_dataset

    dataset = load_dataset(section_from_args(args, "data").absolute())
    stats: dict[str, object] = dict(dataset.stats())
    if args.json:
        if dataset.notes:
            stats["notes"] = dataset.notes
        print(json.dumps(stats))
        return 0
    print(f"dataset: {dataset.name}")
    for key, label in STAT_LABELS.items():
        print(f"  {label:<28}{stats[key]:>10,}")
    for line in dataset.note_lines():
        print(f"  note: {line}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from mmfedrec.data.cache import dataset_folder
    from mmfedrec.data.registry import load_dataset, prepare_split, split_path

    config = resolve_config(args)
    spec, negatives = config.data, config.eval.eval_negatives
    dataset = load_dataset(spec)
    print(f"dataset {dataset.name}: {len(dataset.interactions):,} interactions, cached in {dataset_folder(spec)}")
    for seed in config.seeds:
        split = prepare_split(spec, seed, negatives)
        evaluated = len(split.evaluated_users("test"))
        print(f"split seed {seed}: {evaluated:,} evaluated users, {split_path(spec, seed, negatives)}")
    return 0
