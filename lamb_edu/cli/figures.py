"""Saving a figure from the command line: atomically, then closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from lamb_edu.train.files import write_atomically

__all__ = ["save_figure"]


def save_figure(figure: Any, path: Path, dpi: int, image_format: str = "png") -> None:
    """Write ``figure`` to ``path`` atomically (no half-written image) and close it to free its memory."""
    write_atomically(path, lambda handle: figure.savefig(handle, dpi=dpi, format=image_format))
    plt.close(figure)
