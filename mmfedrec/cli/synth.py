"""`mmfedrec synth`: what augmentation synthesised for one client of a run, and how synthetic
profiles compare with real ones (popularity, category coverage, nearest-real-profile privacy check)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mmfedrec.errors import MmfedrecError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="inspect a run's synthetic data for one client", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run folder trained with --augment")
    parser.add_argument("--client", required=True, help="the client's user id, as in the dataset")
    parser.add_argument("--top-n", type=int, default=20, help="size of a synthetic profile")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from safetensors.numpy import load_file

    from mmfedrec.data.registry import load_dataset, prepare_split
    from mmfedrec.experiment import apply_sparse_protocol, load_run_config, rebuild_augmenter
    from mmfedrec.generators import AugmentationPolicy, PseudoInteractions, synth_report, synthesize_for_client
    from mmfedrec.generators.inspection import write_synth_report

    config = load_run_config(args.run)
    if config.augment.augment == "none":
        raise MmfedrecError(f"{args.run}: this run was trained without --augment; nothing was synthesised")
    seed = config.seeds[0]
    split = prepare_split(config.data, seed, config.eval.eval_negatives, use_cache=config.data.cache_dir is not None)
    split, _ = apply_sparse_protocol(split, config.augment, seed)
    try:
        user = int(np.flatnonzero(split.user_ids == int(args.client))[0])
    except (ValueError, IndexError):
        raise MmfedrecError(f"--client {args.client!r} is not a user id of {config.data.dataset}") from None
    policy = AugmentationPolicy(
        config.augment.sparse_max, config.augment.n_pseudo, config.augment.pseudo_weight, config.augment.min_confidence
    )
    augmenter = rebuild_augmenter(config, split, args.run)
    arrays = load_file(str(args.run / "pseudo_interactions.safetensors"))
    pseudo = PseudoInteractions(arrays["users"], arrays["items"], arrays["weights"])
    synthesis = synthesize_for_client(augmenter, split, user, policy, args.top_n)
    sparse = np.unique(pseudo.users)
    catalog = load_dataset(config.data).catalog
    labels = None if catalog.labels is None else catalog.select(split.item_ids).labels
    report = synth_report(split, pseudo, augmenter.scores(split, sparse), sparse, args.top_n, labels)
    item_ids = split.item_ids
    report["client_item_ids"] = {
        "history": item_ids[synthesis.history].tolist(),
        "pseudo_items": item_ids[synthesis.pseudo_items].tolist(),
    }
    path = write_synth_report(args.run / "synth" / f"client-{args.client}", report, synthesis)
    print(json.dumps({"report": str(path), "client": dataclasses.asdict(synthesis), **report}, indent=2))
    return 0
