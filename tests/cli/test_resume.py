"""Kill -9 in the middle of a run, resume it, and land on the same result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mmfedrec.cli import main

RUN = ["--method", "ours-id-only", "--rounds", "30", "--checkpoint-every", "1", "--seeds", "0,1"]
RUN += ["--synthetic-users", "80", "--synthetic-items", "60", "--eval-negatives", "30", "--quiet"]
RUN += ["--dense-events", "0"]  # the count says dense, the probe keeps sparse: a resume must keep the probe's


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["--threads", "1", "train", *RUN, *cache, "--out", str(tmp_path / "whole")]) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "MMFEDREC_THREADS": "1"}
    argv = [sys.executable, "-m", "mmfedrec", "--threads", "1", "train", *RUN, *cache, "--out", str(killed)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        metrics = killed / "metrics.jsonl"
        while time.monotonic() < deadline and process.poll() is None:
            checkpointed = (killed / "checkpoint-seed0.safetensors").exists() and metrics.exists()
            if checkpointed and len(metrics.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (killed / "summary.json").exists()

    assert main(["--threads", "1", "train", "--resume", str(killed), "--quiet"]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed["test"] == whole["test"]
    assert resumed["best_round"] == whole["best_round"]
    chosen = [(steps["chosen"], steps["valid"]) for steps in whole["client_steps"]]
    assert [regime for regime, _ in chosen] == ["sparse", "sparse"]
    assert [(steps["chosen"], steps["valid"]) for steps in resumed["client_steps"]] == chosen
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == list(range(1, 31)) * 2
    assert validation_curve(killed) == validation_curve(tmp_path / "whole")  # the rounds after the kill too


def validation_curve(run: Path) -> list[tuple[int, int, dict]]:
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(entry["seed"], entry["round"], entry["valid"]["sampled"]) for entry in entries]
