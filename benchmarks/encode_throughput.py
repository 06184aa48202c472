"""Items per second of the text tower (MiniLM) and the image tower (decode + preprocess + forward).

When the text precision resolves to bf16, the same run also times fp32 and reports the min cosine
between the two embeddings, so the speed-up and its accuracy cost come from one measurement.
It also measures this machine's matrix-multiply rate at the tower's shapes and the linear-layer
FLOPs per item, hence the items/s no implementation of the same model could beat here.

Example: .venv/bin/python benchmarks/encode_throughput.py --dataset movielens-100k --root ... --threads 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mmfedrec.config.arguments import add_config_arguments, section_from_args


def gemm_gflops(dtype: object, hidden: int, intermediate: int, rows: int = 4096, repeats: int = 20) -> float:
    """GFLOP/s of one (rows x hidden) @ (hidden x intermediate) product, the tower's largest layer."""
    import torch

    x = torch.randn(rows, hidden).to(dtype)
    w = torch.randn(intermediate, hidden).to(dtype)
    for _ in range(3):
        torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return 2 * rows * hidden * intermediate * repeats / (time.perf_counter() - start) / 1e9


def linear_gflop_per_item(encoder: object, texts: list[str]) -> tuple[float, float]:
    """(mean tokens per item, GFLOP per item in the linear layers: 4 H^2 + 2 H F per token and layer)."""
    config = encoder.transformer.config
    hidden, intermediate = config.hidden_size, config.intermediate_size
    tokens = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_length)["input_ids"]
    mean_tokens = sum(len(t) for t in tokens) / len(tokens)
    per_token = 2 * config.num_hidden_layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    return mean_tokens, per_token * mean_tokens / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser, ("data",))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--text-model", help="default: the packaged MiniLM")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=None, help="text truncation (default: the model's own)")
    parser.add_argument("--text-precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--repeats", type=int, default=1, help="timed text passes per precision (best is kept)")
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

    catalog = load_dataset(section_from_args(args, "data").absolute()).catalog
    texts = [t for t in item_texts(catalog) if t is not None][: args.limit]
    paths = catalog.items["image_path"].dropna().astype(str).tolist()[: args.limit]

    text_encoder = TextEncoder.from_pretrained(
        args.text_model, max_length=args.max_length, precision=args.text_precision
    )
    encoders = {text_encoder.precision: text_encoder}
    if text_encoder.precision == "bf16":  # the fp32 baseline shares the weights
        encoders["fp32"] = TextEncoder(
            text_encoder.transformer, text_encoder.tokenizer, text_encoder.max_length, "fp32"
        )
    rates: dict[str, float] = {}
    embeddings = {}
    for encoder in encoders.values():
        encoder.encode(texts[: args.batch_size])  # warm-up: first-call allocations are not throughput
    for _ in range(args.repeats):  # alternate precisions so a load change hits both alike
        for precision, encoder in encoders.items():
            start = time.perf_counter()
            embeddings[precision] = encoder.encode(texts, batch_size=args.batch_size)
            rates[precision] = max(rates.get(precision, 0.0), len(texts) / (time.perf_counter() - start))

    image_encoder = create_encoder(args.preset)
    encode_images(image_encoder, paths[: args.batch_size])
    start = time.perf_counter()
    encode_images(image_encoder, paths, batch_size=args.batch_size)
    image_rate = len(paths) / (time.perf_counter() - start)

    result = {
        "threads": threads,
        "texts": len(texts),
        "text_precision": text_encoder.precision,
        "text_items_per_s": round(rates[text_encoder.precision], 1),
        "images": len(paths),
        "image_items_per_s": round(image_rate, 1),
        "preset": args.preset,
        "batch_size": args.batch_size,
        "max_length": text_encoder.max_length,
        "repeats": args.repeats,
    }
    if "fp32" in rates and text_encoder.precision != "fp32":
        cosine = (embeddings["bf16"] * embeddings["fp32"]).sum(axis=1)  # rows are unit-norm
        result["text_items_per_s_fp32"] = round(rates["fp32"], 1)
        result["text_bf16_speedup"] = round(rates["bf16"] / rates["fp32"], 2)
        result["text_bf16_min_cosine"] = round(float(cosine.min()), 6)
        result["text_bf16_mean_cosine"] = round(float(cosine.mean()), 6)
    import torch

    config = text_encoder.transformer.config
    mean_tokens, gflop = linear_gflop_per_item(text_encoder, texts)
    dtype = torch.bfloat16 if text_encoder.precision == "bf16" else torch.float32
    peak = gemm_gflops(dtype, config.hidden_size, config.intermediate_size)
    result["text_mean_tokens"] = round(mean_tokens, 1)
    result["text_linear_gflop_per_item"] = round(gflop, 3)
    result["gemm_gflops"] = round(peak, 1)
    result["text_items_per_s_ceiling"] = round(peak / gflop, 1)  # every linear layer at the GEMM rate
    print(json.dumps(result) if args.json else "\n".join(f"{k:<20}{v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
