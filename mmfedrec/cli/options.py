"""Argument types of the options that are not settings of a run (ports, threads, sizes)."""

from __future__ import annotations

import argparse


def int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value}")
        return value

    return parse
