"""Run outputs: `summary.json` (the contract other tools read), `report.md` and PNG plots.

Everything is written atomically (temp file + rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmfedrec.atomic import atomic_path, write_atomic
from mmfedrec.evaluation.selection import DECAYED

HEADLINE = (("sampled", "hr@10"), ("sampled", "ndcg@10"), ("full", "recall@20"), ("full", "ndcg@20"))


def write_json(path: Path, payload: object) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=_plain) + "\n")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def mean_std(values: Sequence[dict]) -> tuple[dict, dict]:
    """Mean and std over seeds of nested metric dicts with the same keys."""
    first = values[0]
    if isinstance(first, dict):
        pairs = {k: mean_std([v[k] for v in values]) for k in first}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarize(method: str, dataset: str, outcomes: Sequence[object], extra: dict | None = None) -> dict:
    """The `summary.json` payload: means over seeds, with per-seed values and stds beside them."""
    test_mean, test_std = mean_std([{"sampled": o.test["sampled"], "full": o.test["full"]} for o in outcomes])
    valid_mean, _ = mean_std([{"sampled": o.valid["sampled"], "full": o.valid["full"]} for o in outcomes])
    names = outcomes[0].test["buckets"].keys()
    buckets = {}
    for name in names:
        per_seed = [o.test["buckets"][name] for o in outcomes]
        mean, std = mean_std([{"sampled": b["sampled"], "full": b["full"]} for b in per_seed])
        buckets[name] = {**mean, "std": std, "users": per_seed[0]["users"]}
    summary = {
        "method": method,
        "dataset": dataset,
        "seeds": [o.seed for o in outcomes],
        "best_round": [o.best_round for o in outcomes],
        "valid": valid_mean,
        "test": test_mean,
        "test_std": test_std,
        "test_users": outcomes[0].test["users"],
        "buckets": buckets,
        "timing": {"sec_per_round": float(np.mean([o.sec_per_round for o in outcomes]))},
        "comm": {
            "upload_bytes_per_client_round": float(np.mean([o.upload_bytes_per_client_round for o in outcomes])),
            "download_bytes_per_client_round": float(np.mean([o.download_bytes_per_client_round for o in outcomes])),
        },
        "per_seed": [
            {"seed": o.seed, "best_round": o.best_round, "test": {"sampled": o.test["sampled"], "full": o.test["full"]}}
            for o in outcomes
        ],
    }
    summary.update(extra or {})
    return summary


def _cell(mean: float, std: float | None = None) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "n/a"
    return f"{mean:.4f}" if not std else f"{mean:.4f} ± {std:.4f}"


def markdown_table(summaries: Sequence[dict], commands: dict[str, str] | None = None) -> str:
    """One row per method: headline test metrics (mean ± std over seeds), rounds, bytes."""
    header = (
        "| method | seeds | " + " | ".join(f"{p} {m}" for p, m in HEADLINE) + " | s/round | upload B/client/round |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for s in summaries:
        cells = [_cell(s["test"][p][m], s.get("test_std", {}).get(p, {}).get(m)) for p, m in HEADLINE]
        upload = s["comm"]["upload_bytes_per_client_round"]
        lines.append(
            f"| {s['method']} | {len(s['seeds'])} | "
            + " | ".join(cells)
            + f" | {s['timing']['sec_per_round']:.3f} | {upload:,.0f} |"
        )
    if commands:
        lines += ["", "Commands:", ""] + [f"- `{name}`: `{cmd}`" for name, cmd in commands.items()]
    return "\n".join(lines)


def bucket_table(summary: dict) -> str:
    lines = [
        "| bucket | users | sampled hr@10 | sampled ndcg@10 | full recall@20 | full ndcg@20 |",
        "|---|---|---|---|---|---|",
    ]
    for name, b in summary["buckets"].items():
        cells = [_cell(b[p][m]) for p, m in HEADLINE]
        lines.append(f"| {name} | {b['users']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(path: Path, curves: dict[str, list[dict]], metric: tuple[str, str] = ("sampled", "ndcg@10")) -> bool:
    """Validation metric per round, one line per method (mean over seeds); False when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    drawn = False
    for name, curve in curves.items():
        points: dict[int, list[float]] = {}
        for entry in curve:
            if "valid" in entry:
                points.setdefault(entry["round"], []).append(entry["valid"][metric[0]][metric[1]])
        if points:
            rounds = sorted(points)
            axis.plot(rounds, [np.mean(points[r]) for r in rounds], marker=".", label=name)
            drawn = True
    if drawn:
        axis.set_xlabel("round")
        axis.set_ylabel(f"valid {metric[0]} {metric[1]}")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        with atomic_path(path) as partial:
            figure.savefig(partial, dpi=110)
    plt.close(figure)
    return drawn


def _privacy_and_faults(summaries: Sequence[dict]) -> list[str]:
    """Lines stating the DP budget spent and the faults met, for runs that had any."""
    lines = []
    for s in summaries:
        privacy, faults = s.get("privacy"), s.get("faults", {})
        if privacy:
            lines.append(
                f"- {s['method']}: client-level DP, epsilon = {privacy['epsilon']:.3f} at delta = {privacy['delta']:g}"
            )
        if faults.get("dropped") or faults.get("rejected_updates"):
            lines.append(
                f"- {s['method']}: {faults['dropped']:.0f} client replies never came, "
                f"{faults['rejected_updates']:.0f} uploads rejected (per seed)"
            )
        if faults.get("diverged_rounds"):
            rounds = ", ".join(str(r) for r in faults["diverged_rounds"])
            lines.append(
                f"- {s['method']}: training diverged (NaN/inf) at round {rounds}; the best round before it is reported"
            )
        if faults.get("stopped_rounds"):
            rounds = ", ".join(str(r) for r in faults["stopped_rounds"])
            lines.append(
                f"- {s['method']}: stopped after round {rounds}: validation stopped improving (--patience); "
                "the best round before it is reported"
            )
        if faults.get("decayed_seeds"):
            seeds = ", ".join(str(seed) for seed in faults["decayed_seeds"])
            lines.append(
                f"- {s['method']}: validation fell below {DECAYED * 100:g} % of its best by the last round (seed {seeds}); "
                "the best round is reported"
            )
    return [*lines, ""] if lines else []


def write_report(
    out_dir: Path,
    summaries: Sequence[dict],
    curves: dict[str, list[dict]],
    title: str,
    commands: dict[str, str] | None = None,
) -> Path:
    """report.md with the method table, each method's bucket table, and the validation plot."""
    out_dir = Path(out_dir)
    has_plot = plot_curves(out_dir / "valid_curve.png", curves)
    parts = [f"# {title}", "", "Test metrics at the round chosen on validation (mean ± std over seeds).", ""]
    parts += [markdown_table(summaries, commands), ""]
    if has_plot:
        parts += ["![validation NDCG@10 per round](valid_curve.png)", ""]
    parts += _privacy_and_faults(summaries)
    for s in summaries:
        parts += [f"## {s['method']}: by client activity (test)", "", bucket_table(s), ""]
    path = out_dir / "report.md"
    write_atomic(path, "\n".join(parts))
    return path
