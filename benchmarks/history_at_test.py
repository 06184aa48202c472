"""Test metrics of a saved `--history` run, ranking with and without the validation item in the history.

    python benchmarks/history_at_test.py "runs/bench-q13a/ours (history recipe)"

The evaluator ranks a client's test item from everything it did before (training items, then the
validation item), as sequential recommenders are evaluated. This shows what reading the
validation item is worth: the same saved model (seed 0), ranking from the training items only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by `mmfedrec train --history N --out ...`")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from mmfedrec.runtime import configure_runtime

    configure_runtime(args.threads)
    from safetensors.torch import load_file

    from mmfedrec.app.run_loader import load_run
    from mmfedrec.evaluation.protocols import evaluate
    from mmfedrec.federation.engines.runner import build_trainer

    run = load_run(args.run)
    trainer = build_trainer(run.method, run.split, run.features, run.config, run.config.seeds[0])
    trainer.load_state(load_file(str(args.run / "model.safetensors")))
    result = {}
    for label, history_stage in (("with the validation item", "test"), ("training items only", "valid")):
        sampled = evaluate(trainer.scorer(history_stage), run.split, "test")["sampled"]
        result[label] = {"hr@10": round(sampled["hr@10"], 4), "ndcg@10": round(sampled["ndcg@10"], 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
