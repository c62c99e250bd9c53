"""Elementwise work in cache-sized blocks: the rows of an array, a few thousand values at a time.

GELU, LayerNorm and the softmax make several passes over their arrays (x², +, tanh, ×, ...). Over a
whole (batch·seq, d_ff) array each pass reads and writes main memory; over a block of
``BLOCK_ELEMENTS`` values all the passes run in the core's own cache and main memory is touched
about once. The maths is unchanged: every block computes exactly what the whole array would. On a
GPU the whole array is one block (its kernels already run over everything at once).
"""

from __future__ import annotations

from lamb_edu import backend

__all__ = ["BLOCK_ELEMENTS", "row_blocks"]

BLOCK_ELEMENTS = 1 << 14  # 16K values, 64 KB of float32: a block and its temporaries stay in the L2 cache


def row_blocks(rows: int, row_size: int) -> list[slice]:
    """Slices of consecutive rows, about ``BLOCK_ELEMENTS`` values each (at least one row), covering ``rows``."""
    if backend.is_gpu() or rows == 0:
        return [slice(0, rows)]
    step = max(1, BLOCK_ELEMENTS // max(row_size, 1))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]
