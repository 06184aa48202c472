"""`mmfedrec train`: train and evaluate one method over seeds into runs/<name>/."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mmfedrec.cli.options import add_dataset_options, dataset_spec, int_in, positive_float
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.schedule import LR_SCHEDULES


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    group.add_argument("--rounds", type=int_in(1, 10**6), default=30, help="federated rounds (central: epochs)")
    group.add_argument("--eval-every", type=int_in(1, 10**6), default=1)
    group.add_argument(
        "--patience", type=int_in(0, 10**6), default=0, help="stop after N evaluations without improvement"
    )
    group.add_argument(
        "--select-on",
        default="ndcg@10",
        help="validation metric (sampled protocol) that picks the reported round: ndcg@10 or hr@10",
    )
    group.add_argument(
        "--engine",
        choices=("sim", "loop", "flower-sim", "flower-deploy"),
        default="sim",
        help="sim: batched in-process engine; loop: per-client reference; flower-*: Flower Simulation/Deployment",
    )
    group.add_argument("--client-fraction", type=float, default=1.0, help="fraction of clients per round")
    group.add_argument("--local-epochs", type=int_in(1, 1000), default=1)
    group.add_argument("--lr", type=positive_float, default=0.3, help="client step on user state and item vectors")
    group.add_argument("--shared-lr", type=positive_float, default=0.05, help="client step on shared tensors")
    group.add_argument("--local-optimizer", choices=("adam", "sgd"), default="adam")
    group.add_argument(
        "--row-optimizer",
        choices=("adam", "sgd"),
        default="",
        help="step of the item vectors a client touches (default: --local-optimizer); adam = Adam's first step",
    )
    group.add_argument("--row-lr", type=positive_float, default=0.0, help="its learning rate (default: --lr)")
    group.add_argument("--batch-size", type=int_in(1, 10**7), default=64, help="examples per local step")
    group.add_argument("--negatives", type=int_in(1, 1000), default=4, help="training negatives per positive")
    group.add_argument(
        "--negatives-avoid-heldout",
        action="store_true",
        help="PFedRec's sampling: training negatives also avoid each user's valid/test items "
        "(reads held-out labels; only to compare with numbers published that way)",
    )
    group.add_argument(
        "--personal-items",
        action="store_true",
        help="PFedRec's dual personalisation for any federated method: each client ranks with the item "
        "vectors it fine-tuned in its last round (private; in-process engines only)",
    )
    group.add_argument(
        "--eval-negatives", type=int_in(1, 100_000), default=99, help="sampled-protocol negatives per user"
    )
    group.add_argument("--dim", type=int_in(1, 4096), default=32)
    group.add_argument(
        "--experts", type=int_in(1, 256), default=None, help="experts of ours and its ablations (default: 4)"
    )
    group.add_argument(
        "--history",
        type=int_in(0, 1000),
        default=0,
        help="ours and its ablations: the user state also reads a recency-weighted mean vector of the client's "
        "N latest items, through a shared context map (next-item training; the items stay on the client). 0 = off",
    )
    group.add_argument(
        "--loss",
        choices=("bce", "bpr", "softmax"),  # local.LOSSES, without importing torch to parse arguments
        default="bce",
        help="bce: each item of an example on its own; bpr: positive over each negative; softmax: the positive "
        "against all its negatives at once (sampled softmax; pairs well with --negatives 16)",
    )
    group.add_argument("--fedprox-mu", type=float, default=0.0)
    group.add_argument("--server-optimizer", choices=("fedavg", "fedadam"), default="fedavg")
    group.add_argument("--server-lr", type=positive_float, default=1.0)
    group.add_argument(
        "--content-lr", type=positive_float, default=0.005, help="server Adam step on the item tower's content"
    )
    group.add_argument(
        "--id-shrink",
        type=float,
        default=0.05,
        help="share of each item ID vector handed to the content per round (0 = the content never takes over)",
    )
    group.add_argument(
        "--row-average",
        choices=("senders", "clients"),
        default="senders",
        help="an item vector's summed update is divided by the clients that trained it (FedMF) "
        "or by all clients of the round (FedAvg over the whole table, as PFedRec's code)",
    )
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="client learning rates (central methods: the Adam step) over the rounds: constant, or a cosine decay over --rounds",
    )
    group.add_argument("--central-lr", type=positive_float, default=0.005)
    group.add_argument("--text-model", help="local model folder (default: packaged all-MiniLM-L6-v2)")
    group.add_argument("--preset", default="tiny", help="open_clip image preset")
    group.add_argument("--image-checkpoint", help="trained image tower (safetensors); default: seeded random init")
    group.add_argument("--quiet", action="store_true", help="no per-round progress")
    robust = parser.add_argument_group("privacy and robustness")
    robust.add_argument("--dp-epsilon", type=float, default=0.0, help="client-level DP budget over the run (0 = off)")
    robust.add_argument("--dp-delta", type=float, default=1e-5)
    robust.add_argument("--dp-clip", type=positive_float, default=1.0, help="per-client L2 clip of the whole update")
    robust.add_argument("--secure-agg", action="store_true", help="pairwise-masked dense uploads (small runs)")
    robust.add_argument("--aggregator", choices=("fedavg", "median", "trimmed-mean"), default="fedavg")
    robust.add_argument("--trim", type=float, default=0.1, help="trimmed mean: fraction cut from each side")
    robust.add_argument("--norm-bound", type=float, default=0.0, help="scale updates to at most this norm (0 = off)")
    robust.add_argument("--byzantine", type=float, default=0.0, help="fraction of clients that attack")
    robust.add_argument("--byzantine-mode", choices=("scale", "random", "sign-flip"), default="scale")
    robust.add_argument("--dropout", type=float, default=0.0, help="fraction of selected clients that never reply")
    robust.add_argument(
        "--checkpoint-every", type=int_in(0, 10**6), default=0, help="resumable checkpoint every N rounds"
    )
    compress = parser.add_argument_group("upload compression (error feedback keeps what is not sent)")
    compress.add_argument(
        "--compress-topk", type=float, default=1.0, help="fraction of shared entries and item rows sent (1 = all)"
    )
    compress.add_argument("--compress-bits", type=int, choices=(8, 32), default=32, help="8: int8 values + scale")
    augment = parser.add_argument_group("sparse clients and augmentation")
    augment.add_argument("--augment", choices=("none", "diffusion", "popularity", "item-knn"), default="none")
    augment.add_argument("--sparse-fraction", type=float, default=0.0, help="cut this fraction of clients (protocol)")
    augment.add_argument(
        "--sparse-max", type=int_in(0, 10**6), default=5, help="... to this many most recent training events"
    )
    augment.add_argument("--n-pseudo", type=int_in(0, 10**4), default=10, help="pseudo-interactions per sparse client")
    augment.add_argument("--pseudo-weight", type=float, default=0.5, help="their weight in the local loss")
    augment.add_argument("--min-confidence", type=float, default=0.0, help="drop pseudo-items scored below this")


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise MmfedrecError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds:
        raise MmfedrecError("--seeds is empty")
    if not all(0 <= seed < 2**32 for seed in seeds):
        raise MmfedrecError(f"--seeds must lie in [0, 2**32), got {text!r}")
    return seeds


def experiment_config(args: argparse.Namespace, method: str, out: Path):
    from mmfedrec.experiment import AugmentConfig, ExperimentConfig, FeatureConfig
    from mmfedrec.federation.compression import CompressionConfig
    from mmfedrec.federation.defended import DefenseConfig
    from mmfedrec.federation.local import LocalConfig
    from mmfedrec.federation.methods import method_spec
    from mmfedrec.federation.runner import TrainSettings
    from mmfedrec.federation.simulation import FederatedConfig

    if args.rounds < 1:
        raise MmfedrecError(f"--rounds must be >= 1, got {args.rounds}")
    if not 0.0 < args.client_fraction <= 1.0:
        raise MmfedrecError(f"--client-fraction must be in (0, 1], got {args.client_fraction}")
    if args.dp_epsilon < 0 or args.checkpoint_every < 0:
        raise MmfedrecError("--dp-epsilon and --checkpoint-every must be >= 0")
    if args.dp_epsilon > 0 and not 0.0 < args.dp_delta < 1.0:
        raise MmfedrecError(f"--dp-delta must be in (0, 1), got {args.dp_delta}")
    defense = DefenseConfig(
        aggregator=args.aggregator,
        trim=args.trim,
        norm_bound=args.norm_bound,
        dp_clip=args.dp_clip,
        secure_agg=args.secure_agg,
        byzantine=args.byzantine,
        byzantine_mode=args.byzantine_mode,
        dropout=args.dropout,
    )
    local = LocalConfig(
        lr=args.lr,
        shared_lr=args.shared_lr,
        optimizer=args.local_optimizer,
        row_optimizer=args.row_optimizer,
        row_lr=args.row_lr,
        local_epochs=args.local_epochs,
        batch_size=args.batch_size,
        loss=args.loss,
        proximal_mu=args.fedprox_mu,
    )
    federated = FederatedConfig(
        client_fraction=args.client_fraction,
        engine="loop" if args.engine == "loop" else "batched",
        n_negatives=args.negatives,
        negatives_avoid_heldout=args.negatives_avoid_heldout,
        personal_items=args.personal_items,
        server_optimizer=args.server_optimizer,
        server_lr=args.server_lr,
        content_lr=args.content_lr,
        id_shrink=args.id_shrink,
        row_average=args.row_average,
        lr_schedule=args.lr_schedule,
        local=local,
        compression=CompressionConfig(topk=args.compress_topk, bits=args.compress_bits),
        defense=defense,
    )
    spec = method_spec(method)
    if args.experts is not None and (spec.model != "moe" or spec.n_experts == 1):
        raise MmfedrecError(f"--experts applies to the mixture-of-experts methods (ours, ...), not {method}")
    if args.history and spec.model != "moe":
        raise MmfedrecError(f"--history applies to ours and its ablations (the mixture-of-experts model), not {method}")
    settings = TrainSettings(
        rounds=args.rounds,
        eval_every=args.eval_every,
        dim=args.dim,
        experts=args.experts or 0,
        history=args.history,
        federated=federated,
        central_lr=args.central_lr,
        patience=args.patience,
        select_on=args.select_on,
        dp_epsilon=args.dp_epsilon,
        dp_delta=args.dp_delta,
        checkpoint_every=args.checkpoint_every,
    )
    if not 0.0 <= args.sparse_fraction <= 1.0:
        raise MmfedrecError(f"--sparse-fraction must be in [0, 1], got {args.sparse_fraction}")
    features = FeatureConfig(args.text_model, args.preset, args.image_checkpoint)
    augment = AugmentConfig(
        args.augment, args.sparse_fraction, args.sparse_max, args.n_pseudo, args.pseudo_weight, args.min_confidence
    )
    return ExperimentConfig(
        method=method,
        dataset=dataset_spec(args),
        out=out,
        seeds=parse_seeds(args.seeds),
        eval_negatives=args.eval_negatives,
        train=settings,
        features=features,
        augment=augment,
        progress=not args.quiet,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmfedrec.federation.methods import METHODS

    parser = subparsers.add_parser("train", help="train and evaluate one method", description=__doc__)
    parser.add_argument("--method", choices=list(METHODS), default="ours")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<method>)")
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    add_dataset_options(parser)
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfedrec.evaluation.report import markdown_table
    from mmfedrec.experiment import run_experiment

    if args.resume is not None:
        from mmfedrec.experiment import load_experiment_config

        config = load_experiment_config(args.resume)
        out = args.resume
        summary = run_experiment(dataclasses.replace(config, progress=not args.quiet), resume=True)
    elif args.engine.startswith("flower"):
        from mmfedrec.federation.flower_engine import run_flower_experiment

        out = args.out or Path("runs") / args.method
        summary = run_flower_experiment(experiment_config(args, args.method, out), args.engine)
    else:
        out = args.out or Path("runs") / args.method
        summary = run_experiment(experiment_config(args, args.method, out))
    print(json.dumps(summary, indent=2) if args.json else markdown_table([summary]))
    if not args.json:
        print(f"\nwrote {out}/summary.json and {out}/report.md")
    return 0
