"""Items per second of the text tower (MiniLM) and the image tower (decode + preprocess + forward).

Example: .venv/bin/python benchmarks/encode_throughput.py --dataset movielens-100k --root ... --threads 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mmfedrec.cli.options import add_dataset_options, dataset_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_options(parser)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--text-model", help="default: the packaged MiniLM")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128, help="text truncation, in tokens")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from mmfedrec.runtime import configure_runtime

    threads = configure_runtime(args.threads)
    from mmfedrec.data.registry import load_dataset
    from mmfedrec.encoders.factory import create_encoder
    from mmfedrec.encoders.features import item_texts
    from mmfedrec.encoders.image import encode_images
    from mmfedrec.encoders.text import TextEncoder

    catalog = load_dataset(dataset_spec(args)).catalog
    texts = [t for t in item_texts(catalog) if t is not None][: args.limit]
    paths = catalog.items["image_path"].dropna().astype(str).tolist()[: args.limit]

    text_encoder = TextEncoder.from_pretrained(args.text_model, max_length=args.max_length)
    text_encoder.encode(texts[: args.batch_size])  # warm-up: first-call allocations are not throughput
    start = time.perf_counter()
    text_encoder.encode(texts, batch_size=args.batch_size)
    text_rate = len(texts) / (time.perf_counter() - start)

    image_encoder = create_encoder(args.preset)
    encode_images(image_encoder, paths[: args.batch_size])
    start = time.perf_counter()
    encode_images(image_encoder, paths, batch_size=args.batch_size)
    image_rate = len(paths) / (time.perf_counter() - start)

    result = {
        "threads": threads,
        "texts": len(texts),
        "text_items_per_s": round(text_rate, 1),
        "images": len(paths),
        "image_items_per_s": round(image_rate, 1),
        "preset": args.preset,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k:<20}{v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
