"""Whether operations record a graph: off inside ``no_grad()`` (evaluation, optimizer updates)."""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["no_grad", "is_grad_enabled"]

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block operations build no graph (for evaluation and optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return _grad_enabled
