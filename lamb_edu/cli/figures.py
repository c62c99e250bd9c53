"""Saving a figure from the command line: atomically, then closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_figure"]


def save_figure(figure: Any, path: Path, dpi: int, image_format: str = "png") -> None:
    """Write ``figure`` to ``path`` atomically (no half-written image) and close it to free its memory."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from lamb_edu.train.files import write_atomically  # noqa: PLC0415

    write_atomically(path, lambda handle: figure.savefig(handle, dpi=dpi, format=image_format))
    plt.close(figure)
