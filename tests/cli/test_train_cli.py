"""`mmfedrec train` / `mmfedrec run` end to end on a tiny synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from mmfedrec.cli import main

TINY = ["--synthetic-users", "80", "--synthetic-items", "60", "--eval-negatives", "30", "--quiet"]


def test_train_writes_the_summary_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "--method", "fedavg-mf", "--rounds", "3", "--seeds", "0,1", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["method"] == "fedavg-mf" and summary["dataset"] == "synthetic" and summary["seeds"] == [0, 1]
    assert set(summary["test"]) == {"sampled", "full"}
    assert {"hr@10", "ndcg@10"} <= set(summary["test"]["sampled"])
    assert {"recall@20", "ndcg@20"} <= set(summary["test"]["full"])
    assert {"q1", "q5", "sparse"} <= set(summary["buckets"])
    assert summary["timing"]["sec_per_round"] > 0
    assert summary["comm"]["upload_bytes_per_client_round"] > 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {line["round"] for line in lines} == {1, 2, 3}
    assert "valid" in lines[0]
    assert "| fedavg-mf |" in (out / "report.md").read_text()
    assert (out / "valid_curve.png").stat().st_size > 1000
    assert any(k.startswith("private.user") for k in load_file(out / "model.safetensors"))


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--method", "fedavg-mf", "--seeds", "a,b", "--out", str(tmp_path), *TINY]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--seeds" in error


def test_run_compares_methods_in_one_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--methods", "popularity,central-mf,ours-id-only", "--rounds", "2", "--out", str(tmp_path / "main")]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    for method in ("popularity", "central-mf", "ours-id-only"):
        assert f"| {method} |" in printed
    assert "| ours-id-only |" in (tmp_path / "main" / "report.md").read_text()


def test_sparse_protocol_with_augmentation_and_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aug"
    argv = ["train", "--method", "fedavg-mf", "--rounds", "2", "--out", str(out), "--augment", "popularity"]
    argv += ["--sparse-fraction", "0.5", "--sparse-max", "3", "--cache-dir", str(tmp_path / "cache"), *TINY]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"sparse", "dense"} <= set(summary["buckets"])
    assert summary["augment"]["augment"] == "popularity"
    pseudo = load_file(out / "pseudo_interactions.safetensors")
    assert len(pseudo["users"]) > 0 and float(pseudo["weights"].max()) == pytest.approx(0.5)
    capsys.readouterr()

    from mmfedrec.data.registry import prepare_split
    from mmfedrec.experiment import apply_sparse_protocol, load_run_config

    config = load_run_config(out)
    split, groups = apply_sparse_protocol(prepare_split(config.data, 0, config.eval.eval_negatives), config.augment, 0)
    user_id = int(split.user_ids[groups["sparse"][0]])
    assert main(["synth", "--run", str(out), "--client", str(user_id), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    client = report["client"]
    assert client["user_id"] == str(user_id) and client["augmented"]
    history_ids = {row["item_id"] for row in client["history"]}
    assert 0 < len(history_ids) <= 3 and history_ids <= set(split.item_ids.tolist())  # ids, not indices
    assert all({"item_id", "title", "score"} <= set(row) for row in client["pseudo_items"])
    population = report["population"]
    assert population["privacy"]["near_copies"] >= 0 and "jensen_shannon" in population["popularity"]
    assert (out / "synth" / f"client-{user_id}" / "synth_report.json").exists()

    untouched = sorted(set(groups["dense"].tolist()) - set(pseudo["users"].tolist()))  # dense: not augmented
    dense_id = int(split.user_ids[untouched[0]])
    assert main(["synth", "--run", str(out), "--client", str(dense_id)]) == 0
    printed = capsys.readouterr().out
    assert f"client {dense_id} of synthetic" in printed and "not a sparse client" in printed

    assert main(["synth", "--run", str(out), "--client", "999999"]) == 2
    assert "999999" in capsys.readouterr().err


def test_compressed_uploads_are_smaller_and_flower_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--method", "fedavg-mf", "--rounds", "2", *TINY, "--cache-dir", str(tmp_path / "cache"), "--json"]
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads(capsys.readouterr().out)["comm"]["upload_bytes_per_client_round"]
    compressed_argv = [*argv, "--compress-topk", "0.25", "--compress-bits", "8", "--out", str(tmp_path / "small")]
    assert main(compressed_argv) == 0
    compressed = json.loads(capsys.readouterr().out)["comm"]["upload_bytes_per_client_round"]
    assert compressed < plain / 4
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["compression"] == {"compress_topk": 0.25, "compress_bits": 8}
    assert main([*argv, "--byzantine", "0.1", "--out", str(tmp_path / "flower"), "--engine", "flower-sim"]) == 2
    assert "simulated attacks, simulated dropout and checkpoints run in-process only" in capsys.readouterr().err


def test_personal_items_apply_to_any_method_and_flower_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--method", "fedavg-mf", "--rounds", "2", *TINY, "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--personal-items", "--out", str(tmp_path / "dual"), "--json"]) == 0
    capsys.readouterr()
    assert load_file(tmp_path / "dual" / "model.safetensors")["personal.keys"].numel() > 0
    assert main([*argv, "--personal-items", "--out", str(tmp_path / "flower"), "--engine", "flower-sim"]) == 2
    assert "fedavg-mf keeps per-client item vectors: in-process only" in capsys.readouterr().err


def test_experts_reach_the_model_in_process_and_on_flower(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings
    from mmfedrec.config.methods import method_spec
    from mmfedrec.federation.engines.runner import build_client_model
    from mmfedrec.federation.flower.run_config import from_run_config, to_run_config

    argv = ["train", "--rounds", "1", "--experts", "2", *TINY, "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--method", "ours-id-only", "--out", str(tmp_path / "moe")]) == 0
    assert load_file(tmp_path / "moe" / "model.safetensors")["shared.experts.weight"].shape[0] == 2
    assert main([*argv, "--method", "fedavg-mf", "--out", str(tmp_path / "mf")]) == 2
    assert "--experts applies to the mixture-of-experts methods" in capsys.readouterr().err
    from tests.federation.helpers import planted_split

    config = with_settings(RunConfig(), method="ours", experts=2, history=3)
    flower = from_run_config(to_run_config(config, seed=0))  # what every Flower process reads
    model = build_client_model(method_spec(flower.method), flower, planted_split())
    assert (model.n_experts, model.history) == (2, 3)


def test_history_auto_reads_the_time_order_of_the_split() -> None:
    import numpy as np

    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings
    from mmfedrec.config.methods import method_spec
    from mmfedrec.config.tree import AUTO_HISTORY
    from mmfedrec.federation.engines.runner import resolved_history
    from tests.federation.helpers import planted_split

    split = planted_split()
    assert len(np.unique(split.train_times)) > 1
    auto = RunConfig()  # history = -1
    assert resolved_history(method_spec("ours"), auto, split) == AUTO_HISTORY
    assert resolved_history(method_spec("ours"), with_settings(auto, split="random"), split) == 0
    same_time = split.with_train(np.ones(len(split.train_items), dtype=bool))
    same_time.train_times[:] = 0  # no timestamps: every event at once
    assert resolved_history(method_spec("ours"), auto, same_time) == 0
    assert resolved_history(method_spec("fedavg-mf"), with_settings(auto, method="fedavg-mf"), split) == 0
    assert resolved_history(method_spec("ours"), with_settings(auto, history=0), split) == 0


def test_history_trains_in_process_and_centrally_and_is_refused_without_a_mixture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--rounds", "2", "--history", "3", *TINY, "--cache-dir", str(tmp_path / "cache")]
    for method in ("ours-id-only", "central-ours"):
        assert main([*argv, "--method", method, "--out", str(tmp_path / method)]) == 0
        assert json.loads((tmp_path / method / "config.json").read_text())["model"]["history"] == 3
        first_round = json.loads((tmp_path / method / "metrics.jsonl").read_text().splitlines()[0])
        assert first_round["clients"] == 80  # every synthetic user, not their examples
    assert main([*argv, "--method", "fedncf", "--out", str(tmp_path / "ncf")]) == 2
    assert "--history applies to ours and its ablations" in capsys.readouterr().err


def test_history_is_refused_without_a_time_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a time order the "next item" a history trains for is tie-breaking: the curve decays."""
    argv = ["train", "--method", "ours-id-only", "--rounds", "1", "--history", "3", "--split", "random", *TINY]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]) == 2
    assert "this split has no time order" in capsys.readouterr().err


def test_a_run_stopped_by_patience_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "--method", "fedavg-mf", "--rounds", "30", "--lr", "3.0", "--patience", "2", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    stopped = summary["faults"]["stopped_rounds"]
    assert len(stopped) == 1 and stopped[0] < 30 and stopped[0] == summary["best_round"][0] + 2
    assert "did not improve for 2 evaluations" in capsys.readouterr().err
    assert "validation stopped improving" in (out / "report.md").read_text()


def test_a_run_whose_validation_decays_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "--method", "fedavg-mf", "--rounds", "30", "--lr", "3.0", "--quiet", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    curve = [json.loads(line)["valid"]["sampled"]["ndcg@10"] for line in (out / "metrics.jsonl").open()]
    assert curve[-1] < 0.95 * max(curve)  # the case: the curve fell after its peak
    assert summary["faults"]["decayed_seeds"] == [0]
    assert "decayed to" in capsys.readouterr().err  # shown even with --quiet
    assert "validation fell below 95 % of its best" in (out / "report.md").read_text()


def test_the_cold_start_protocol_reports_cold_and_warm_test_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file

    from mmfedrec.data.registry import prepare_split
    from mmfedrec.data.splits import make_cold_items
    from mmfedrec.experiment import load_run_config

    out = tmp_path / "cold"
    argv = ["train", "--method", "ours-no-image", "--rounds", "2", "--cold-items", "0.2", "--out", str(out)]
    assert main([*argv, *TINY, "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    cold, warm = summary["buckets"]["cold"]["users"], summary["buckets"]["warm"]["users"]
    assert cold > 0 and cold + warm == summary["test_users"]
    config = load_run_config(out)
    split = prepare_split(config.data, 0, config.eval.eval_negatives)
    made, items = make_cold_items(split, 0.2, seed=0)
    assert len(items) == round(0.2 * split.n_items) and not set(made.train_items.tolist()) & set(items.tolist())
    assert (made.test_items == split.test_items).all() and len(made.train_items) < len(split.train_items)
    assert (make_cold_items(split, 0.2, seed=0)[1] == items).all()  # seeded
    # the server learned from the uploads which items some client holds: the others are content alone
    evidence = load_file(str(out / "model.safetensors"))["tower.evidence"].numpy()
    assert ((evidence > 0) == (np.bincount(made.train_items, minlength=split.n_items) > 0)).all()


def test_content_ranks_items_no_client_holds_where_id_vectors_cannot(tmp_path: Path) -> None:
    """Synthetic items' content carries their taste: from it alone, held-out cold items rank well
    above chance (10 of 100 candidates), while an ID-only model has nothing to rank them by."""
    cold_hr = {}
    for method in ("ours", "ours-id-only"):
        out = tmp_path / method
        argv = ["train", "--method", method, "--rounds", "20", "--cold-items", "0.2", "--quiet", "--out", str(out)]
        scale = ["--synthetic-users", "300", "--synthetic-items", "200", "--cache-dir", str(tmp_path / "cache")]
        assert main([*argv, *scale]) == 0
        cold_hr[method] = json.loads((out / "summary.json").read_text())["buckets"]["cold"]["sampled"]["hr@10"]
    assert cold_hr["ours"] >= 0.2 and cold_hr["ours-id-only"] < 0.1, cold_hr
