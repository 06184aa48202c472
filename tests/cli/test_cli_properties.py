"""Property tests: whatever numbers or strings the options get, `mmfedrec` never shows a traceback.

It exits 0, returns 2 with one `mmfedrec: error: ...` line (our errors), or argparse exits 2.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmfedrec.cli import main

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = ["--synthetic-users", "30", "--synthetic-items", "20", "--eval-negatives", "5", "--quiet"]

GARBAGE = st.sampled_from(["", "x", "1,2", "0x10", "--", "-", " 3", "1_0", "½", "\x00"])
HUGE = st.integers(min_value=2**63, max_value=2**80).flatmap(lambda n: st.sampled_from([n, -n]))
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(["nan", "inf", "-inf", "1e400"])


def small_ints(low: int, high: int) -> st.SearchStrategy[str]:
    """Values that run quickly when valid (sizes and counts), plus garbage."""
    return st.integers(low, high).map(str) | GARBAGE


def run_cli(argv: list[str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether argparse exited) of one in-process `mmfedrec` call (1 torch thread)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return main(["--threads", "1", *argv]), err.getvalue(), False
        except SystemExit as exit_:
            return exit_.code, err.getvalue(), True


def assert_clean_exit(argv: list[str]) -> None:
    code, stderr, by_argparse = run_cli(argv)
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if by_argparse:
        assert code == 2 and "error:" in last, (argv, stderr)
    else:
        assert code in (0, 2), (argv, code, stderr)
        if code == 2:
            assert last.startswith("mmfedrec: error: "), (argv, stderr)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """One cache shared by every example: the tiny synthetic set is built once."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@st.composite
def options(draw: st.DrawFn, choices: dict[str, st.SearchStrategy[str]]) -> list[str]:
    argv: list[str] = []
    for name in draw(st.lists(st.sampled_from(sorted(choices)), max_size=3, unique=True)):
        argv += [name, draw(choices[name])]
    return argv


DATA_OPTIONS = {
    "--synthetic-users": small_ints(-3, 40),
    "--synthetic-items": small_ints(-3, 30),
    "--data-seed": small_ints(-3, 5) | HUGE.map(str),
    "--kcore": small_ints(-3, 4) | HUGE.map(str),
    "--min-rating": ANY_FLOAT | GARBAGE,
    "--dataset": st.sampled_from(["synthetic", "movielens-100k", "csv", "parquet", "nope"]),
}


@PROPERTY
@given(extra=options(DATA_OPTIONS), as_json=st.booleans())
def test_data_stats_never_shows_a_traceback(workdir: Path, extra: list[str], as_json: bool) -> None:
    argv = ["data", "stats", "--cache-dir", str(workdir / "cache"), *TINY[:4], *extra]
    assert_clean_exit(argv + (["--json"] if as_json else []))


TRAIN_OPTIONS = {
    "--rounds": small_ints(-3, 2) | HUGE.filter(lambda n: n < 0).map(str),
    "--client-fraction": ANY_FLOAT | GARBAGE,
    "--sparse-fraction": ANY_FLOAT | GARBAGE,
    "--seeds": st.text(alphabet="0123 ,x.", max_size=4),
    "--engine": st.sampled_from(["sim", "loop", "flower"]),
    "--loss": st.sampled_from(["bce", "bpr", "mse"]),
    "--method": st.sampled_from(["fedavg-mf", "popularity", "nope"]),
}


@PROPERTY
@given(extra=options(TRAIN_OPTIONS))
def test_train_never_shows_a_traceback(workdir: Path, extra: list[str]) -> None:
    argv = ["train", "--method", "fedavg-mf", "--rounds", "1", "--out", str(workdir / "run")]
    assert_clean_exit([*argv, "--cache-dir", str(workdir / "cache"), *TINY, *extra])


OUT_OF_RANGE = {  # each once ended in a traceback; now a one-line usage error
    "negative dim": ["--dim", "-3"],
    "zero batch size": ["--batch-size", "0"],
    "negative eval negatives": ["--eval-negatives", "-2"],
    "huge negatives": ["--negatives", str(2**66)],
    "zero eval-every": ["--eval-every", "0"],
    "nan lr": ["--lr", "nan"],
    "negative lr": ["--lr", "-1"],
    "negative seed": ["--seeds", "-1"],
    "seed beyond int64": ["--seeds", str(2**66)],
}


@pytest.mark.parametrize("extra", OUT_OF_RANGE.values(), ids=list(OUT_OF_RANGE))
def test_out_of_range_training_options_are_usage_errors(workdir: Path, extra: list[str]) -> None:
    argv = ["train", "--method", "fedavg-mf", "--rounds", "1", "--out", str(workdir / "run")]
    code, stderr, _ = run_cli([*argv, "--cache-dir", str(workdir / "cache"), *TINY, *extra])
    last = stderr.strip().splitlines()[-1]
    assert code == 2 and "error:" in last and extra[0] in last, stderr  # one error line


def test_zero_threads_is_a_usage_error() -> None:
    code, stderr, _ = run_cli(["--threads", "0", "data", "stats"])
    assert code == 2 and "--threads" in stderr and stderr.count("\n") == 1  # one line, no page of usage
