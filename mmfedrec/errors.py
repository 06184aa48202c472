"""The one error type users see: a short, specific message, never a traceback."""

from __future__ import annotations


class MmfedrecError(Exception):
    """Bad input or configuration; the CLI prints the message on one line and exits 2."""


class TrainingDiverged(MmfedrecError):
    """Training produced NaN or inf: the learning rates are too large for this model and data."""


class DataError(MmfedrecError):
    """A data file is malformed. The message names the file, the line or field, and what was expected."""

    def __init__(self, path: object, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem
