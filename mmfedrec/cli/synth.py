"""`mmfedrec synth`: what augmentation synthesised for one client of a run, and how synthetic
profiles compare with real ones (popularity, category coverage, nearest-real-profile privacy check)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmfedrec.errors import MmfedrecError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="inspect a run's synthetic data for one client", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run folder trained with --augment")
    parser.add_argument("--client", required=True, help="the client's user id, as in the dataset")
    parser.add_argument("--top-n", type=int, default=20, help="size of a synthetic profile (default: 20)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from safetensors.numpy import load_file

    from mmfedrec.data.registry import load_dataset
    from mmfedrec.experiment import load_run_config, rebuild_augmenter, run_split
    from mmfedrec.generators import AugmentationPolicy, PseudoInteractions, synth_report, synthesize_for_client
    from mmfedrec.generators.inspection import write_synth_report

    config = load_run_config(args.run)
    if config.augment.augment == "none":
        raise MmfedrecError(f"{args.run}: this run was trained without --augment; nothing was synthesised")
    seed = config.seeds[0]
    split, _ = run_split(config, seed)
    dataset = load_dataset(config.data)
    user_ids = [str(u) for u in dataset.original_user_ids(split.user_ids)]
    if args.client not in user_ids:
        raise MmfedrecError(f"--client {args.client!r} is not a user id of {config.data.dataset}")
    user = user_ids.index(args.client)
    augment = config.augment
    policy = AugmentationPolicy(augment.sparse_max, augment.n_pseudo, augment.pseudo_weight, augment.min_confidence)
    augmenter = rebuild_augmenter(config, split, args.run)
    arrays = load_file(str(args.run / "pseudo_interactions.safetensors"))
    pseudo = PseudoInteractions(arrays["users"], arrays["items"], arrays["weights"])
    synthesis = synthesize_for_client(augmenter, split, user, policy, args.top_n)
    sparse = np.unique(pseudo.users)
    catalog = dataset.catalog.select(split.item_ids)
    labels = catalog.labels
    report = synth_report(split, pseudo, augmenter.scores(split, sparse), sparse, args.top_n, labels)
    item_ids, titles = catalog.original_ids, catalog.items["title"].astype(str).tolist()

    def items(indices: list[int], scores: list[float] | None = None) -> list[dict[str, object]]:
        rows = [{"item_id": _plain(item_ids[i]), "title": titles[i]} for i in indices]
        return rows if scores is None else [row | {"score": round(s, 4)} for row, s in zip(rows, scores, strict=True)]

    augmented = bool(np.isin(user, sparse))
    client = {
        "user_id": args.client,
        "augmented": augmented,
        "note": "augmented in training"
        if augmented
        else "not a sparse client: training added nothing for it; "
        "the pseudo-items below are what augmentation would add",
        "history": items(synthesis.history),
        "synthetic_profile": items(synthesis.top_items, synthesis.top_scores),
        "pseudo_items": items(synthesis.pseudo_items, synthesis.pseudo_scores),
    }
    path = write_synth_report(args.run / "synth" / f"client-{args.client}", {"client": client, "population": report})
    if args.json:
        print(json.dumps({"report": str(path), "client": client, "population": report}, indent=2))
        return 0
    print(f"client {args.client} of {config.data.dataset} ({augment.augment} augmentation): {client['note']}")
    for title, rows in (("history", client["history"]), ("pseudo-items", client["pseudo_items"])):
        print(f"\n{title} ({len(rows)}):")
        for row in rows:
            score = f"  {row['score']:.3f}" if "score" in row else ""
            print(f"  {row['item_id']}  {row['title']}{score}")
    print(f"\nsynthetic vs real profiles, {len(sparse)} augmented clients:")
    for key, value in report.items():
        print(f"  {key}: {json.dumps(value)}")
    print(f"\nwrote {path}")
    return 0


def _plain(value: object) -> object:
    """A numpy scalar as the JSON value it stands for."""
    return value.item() if hasattr(value, "item") else value
