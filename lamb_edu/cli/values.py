"""What a user types: argparse value types with one-line messages, and the error for a bad value."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

__all__ = ["CommandError", "non_negative_float", "positive_float", "decay_rate", "positive_int", "non_negative_int",
           "existing_directory"]


class CommandError(Exception):
    """A user error found after parsing; ``exit_code`` 2 for a bad flag or value, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _number(kind: Callable[[str], Any], low: float, low_inclusive: bool,
            high: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` that parses with ``kind`` and checks the range, with a one-line message."""
    bounds = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        finite = math.isfinite(value)
        above = value >= low if low_inclusive else value > low
        if not (finite and above and (high is None or value < high)):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


non_negative_float = _number(float, 0, True)
positive_float = _number(float, 0, False)
decay_rate = _number(float, 0, True, 1.0)
positive_int = _number(int, 1, True)
non_negative_int = _number(int, 0, True)


def existing_directory(text: str) -> Path:
    """A folder that exists: ``--data-dir`` with a typo was passed over for the next place MNIST is looked for."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path
