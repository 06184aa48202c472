"""Linear probe: how much genre information do item features carry? (held-out items, multi-label).

A logistic-regression head per feature set (text, image, fused = both with their masks,
random = Gaussian noise of the fused width) is trained on 80% of the labelled items and scored
by macro average precision on the rest; "prevalence" is the AP of a constant score.
Example: .venv/bin/python benchmarks/linear_probe.py --dataset movielens-100k --root ... --image-checkpoint ckpt
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mmfedrec.config.arguments import add_config_arguments, section_from_args


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP = mean over positives of precision at their rank (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.mean())


def probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, epochs: int = 300) -> float:
    """Macro AP of a full-batch logistic-regression head (Adam, weight decay) on held-out rows."""
    import torch

    torch.manual_seed(0)
    x = torch.from_numpy(features).float()
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std  # (I, D) standardised on train rows only
    y = torch.from_numpy(labels).float()  # (I, L)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(head(x[train]), y[train]).backward()
        optimizer.step()
    with torch.no_grad():
        scores = head(x[test]).numpy()
    per_label = [average_precision(scores[:, j], labels[test, j]) for j in range(labels.shape[1])]
    return float(np.nanmean(per_label))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser, ("data",))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image-checkpoint", help="trained image tower (default: random-init, labelled as such)")
    parser.add_argument("--feature-cache", default=".cache/mmfedrec/features")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    from mmfedrec.data.registry import load_dataset
    from mmfedrec.encoders.features import compute_item_features
    from mmfedrec.errors import MmfedrecError

    catalog = load_dataset(section_from_args(args, "data").absolute()).catalog
    if catalog.labels is None:
        raise MmfedrecError(f"dataset {args.dataset} has no item labels to probe")
    features, _ = compute_item_features(
        catalog, image_preset=args.preset, image_checkpoint=args.image_checkpoint, cache_dir=args.feature_cache
    )
    labels = catalog.labels.astype(np.float32)  # (I, L) multi-hot
    rng = np.random.default_rng(args.seed)
    rows = rng.permutation(len(catalog))
    n_test = round(len(rows) * args.test_fraction)
    test, train = rows[:n_test], rows[n_test:]
    mask = features.mask.astype(np.float32)  # (I, 2): lets the head tell a missing modality from a feature
    fused = np.concatenate([features.text, features.image, mask], axis=1)
    sets = {
        "text": np.concatenate([features.text, mask[:, :1]], axis=1),
        f"image ({features.metadata.get('image_weights')})": np.concatenate([features.image, mask[:, 1:]], axis=1),
        "fused (text + image)": fused,
        "random": rng.standard_normal(fused.shape).astype(np.float32),
    }
    table = {name: probe(x, labels, train, test) for name, x in sets.items()}
    table["prevalence (constant score)"] = float(
        np.nanmean([labels[test, j].mean() for j in range(labels.shape[1]) if labels[test, j].any()])
    )
    if args.json:
        print(json.dumps({"test_items": len(test), "macro_ap": table}))
        return 0
    print(f"genre linear probe, {len(test)} held-out items, macro average precision")
    print("| features | macro AP |\n| --- | --- |")
    for name, value in table.items():
        print(f"| {name} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
