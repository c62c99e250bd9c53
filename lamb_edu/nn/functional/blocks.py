"""Elementwise work in cache-sized blocks of rows, shared between a few threads.

GELU, LayerNorm and the softmax make several passes over their arrays (x², +, tanh, ×, ...). Over a
whole (batch·seq, d_ff) array each pass reads and writes main memory; over a block of
``BLOCK_ELEMENTS`` values all the passes run in the core's own cache and main memory is touched
about once. NumPy releases the GIL while it computes, so the blocks are shared between threads
(``lamb_edu.host_threads``; the caller's thread works too), the way the BLAS shares a matrix
product. The maths is unchanged: each block computes exactly what the whole array would, whatever
the number of threads. On a GPU the whole array is one block (its kernels already run over everything).
"""

from __future__ import annotations

from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.host_threads import num_threads, worker_pool

__all__ = ["BLOCK_ELEMENTS", "row_blocks", "for_blocks"]

BLOCK_ELEMENTS = 1 << 16  # 64K values, 256 KB of float32: a block and its temporaries stay in the L2 cache


def row_blocks(rows: int, row_size: int) -> list[slice]:
    """Slices of consecutive rows, about ``BLOCK_ELEMENTS`` values each (at least one row), covering ``rows``."""
    if backend.is_gpu() or rows == 0:
        return [slice(0, rows)]
    step = max(1, BLOCK_ELEMENTS // max(row_size, 1))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def for_blocks(function: Callable[[slice], Any], rows: int, row_size: int) -> None:
    """Call ``function(block)`` for every block of ``row_blocks(rows, row_size)``, the blocks shared between threads.

    Each thread takes a run of consecutive blocks; ``function`` must write only its own block's rows,
    and must not call ``for_blocks`` itself (the pool's workers would wait on each other).
    """
    blocks = row_blocks(rows, row_size)
    pieces = min(num_threads(), len(blocks))
    if pieces == 1:
        for block in blocks:
            function(block)
        return

    def run(first: int, stop: int) -> None:
        for block in blocks[first:stop]:
            function(block)

    bounds = [len(blocks) * i // pieces for i in range(pieces + 1)]
    futures = [worker_pool().submit(run, bounds[i], bounds[i + 1]) for i in range(1, pieces)]
    run(bounds[0], bounds[1])
    for future in futures:
        future.result()
