"""`mmfedrec encode`: item features for a dataset (cached), optionally after aligning the image tower."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmfedrec.config.arguments import add_config_arguments, section_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("encode", help="encode item text and images into a feature cache")
    add_config_arguments(parser, ("data", "features"))
    group = parser.add_argument_group("encoding")
    group.add_argument(
        "--text-precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="text tower arithmetic; auto = bf16 autocast on CPUs with native bf16 (faster), else fp32",
    )
    group.add_argument("--no-image", action="store_true", help="text features only")
    group.add_argument("--batch-size", type=int, default=64)
    group.add_argument("--feature-cache", type=Path, help="feature cache folder (default: <cache-dir>/features)")
    train = parser.add_argument_group("image tower alignment")
    train.add_argument("--train-image-tower", action="store_true", help="contrastive training on the catalogue first")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--train-batch-size", type=int, default=128)
    train.add_argument("--heldout-fraction", type=float, default=0.1, help="items kept out of training for Recall@10")
    train.add_argument("--text-lora-rank", type=int, default=0, help="0 locks the text tower; > 0 LoRA-tunes it")
    train.add_argument("--checkpoint-out", type=Path, help="where the trained tower goes (default: under the cache)")
    train.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    """Load the dataset, train the image tower if asked, compute or load features, report."""
    from mmfedrec.data.registry import load_dataset
    from mmfedrec.encoders.features import compute_item_features

    spec = section_from_args(args, "data").absolute()
    encoders = section_from_args(args, "features")
    dataset = load_dataset(spec)
    cache_root = spec.cache_dir if spec.cache_dir is not None else Path(".cache/mmfedrec").absolute()
    report: dict[str, object] = {}
    image_checkpoint = encoders.image_checkpoint or None
    text_model = encoders.text_model or None
    if args.train_image_tower and not args.no_image:
        from mmfedrec.encoders.alignment import AlignmentConfig, train_image_tower

        config = AlignmentConfig(
            preset=encoders.image_preset,
            epochs=args.epochs,
            batch_size=args.train_batch_size,
            lr=args.lr,
            heldout_fraction=args.heldout_fraction,
            text_lora_rank=args.text_lora_rank,
            seed=args.seed,
        )
        checkpoint = (
            args.checkpoint_out
            or cache_root / "encoders" / f"{dataset.name}-{encoders.image_preset}-aligned.safetensors"
        )
        start = time.perf_counter()
        result = train_image_tower(
            dataset.catalog,
            config,
            text_model=text_model,
            checkpoint_path=checkpoint,
            progress=not args.no_progress,
        )
        image_checkpoint = str(result.checkpoint)
        report.update(
            {
                "heldout_items": result.heldout_items,
                "heldout_recall@10": round(result.heldout_recall_at_10, 4),
                "initial_recall@10": round(result.initial_recall_at_10, 4),
                "chance_recall@10": round(result.chance_recall_at_10, 4),
                "train_items": result.train_items,
                "train_s": round(time.perf_counter() - start, 1),
                "checkpoint": image_checkpoint,
            }
        )

    start = time.perf_counter()
    features, cache_hit = compute_item_features(
        dataset.catalog,
        text_model=text_model,
        image_preset=None if args.no_image else encoders.image_preset,
        image_checkpoint=image_checkpoint,
        cache_dir=args.feature_cache or cache_root / "features",
        batch_size=args.batch_size,
        progress=not args.no_progress,
        text_precision=args.text_precision,
    )
    missing = features.items_without_features.tolist()
    meta = features.metadata
    summary: dict[str, object] = {
        "dataset": dataset.name,
        "items": len(features),
        "items_with_text": int(features.mask[:, 0].sum()),
        "items_with_image": int(features.mask[:, 1].sum()),
        "items_without_features": missing,
        "text_dim": None if features.text is None else int(features.text.shape[1]),
        "image_dim": None if features.image is None else int(features.image.shape[1]),
        "image_weights": meta.get("image_weights"),
        "text_precision": meta.get("text_precision"),
        "text_items_per_s": None if cache_hit or "text_items_per_s" not in meta else float(meta["text_items_per_s"]),
        "image_items_per_s": None if cache_hit or "image_items_per_s" not in meta else float(meta["image_items_per_s"]),
        "cache_hit": cache_hit,
        "features_s": round(time.perf_counter() - start, 3),
        **report,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    for key, value in summary.items():
        print(f"{key:<24}{value}")  # items_without_features lists every id: they must not go unnoticed
    return 0
