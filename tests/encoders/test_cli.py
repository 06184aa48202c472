from __future__ import annotations

import argparse
import json

from mmfedrec.cli import encode


def run(argv: list[str], capsys) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    encode.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_encode_trains_then_hits_the_cache(tmp_path, capsys) -> None:
    argv = [
        "encode",
        "--dataset",
        "synthetic",
        "--synthetic-users",
        "20",
        "--synthetic-items",
        "30",
        "--cache-dir",
        str(tmp_path),
        "--json",
        "--no-progress",
    ]
    trained = run([*argv, "--train-image-tower", "--epochs", "1", "--train-batch-size", "8"], capsys)
    assert {
        "items",
        "items_with_text",
        "items_with_image",
        "text_items_per_s",
        "text_precision",
        "image_items_per_s",
        "cache_hit",
        "heldout_items",
        "heldout_recall@10",
        "chance_recall@10",
    } <= set(trained)
    assert trained["items"] == 30 and trained["cache_hit"] is False
    assert trained["image_weights"] == trained["checkpoint"]
    assert trained["text_precision"] in ("fp32", "bf16")

    again = run([*argv, "--image-checkpoint", trained["checkpoint"]], capsys)
    assert again["cache_hit"] is True
