"""The host threads lamb-edu's own parallel loops use: how many, and the pool that runs them.

NumPy releases the GIL while it computes, so a loop over cache-sized blocks can share its blocks
between threads (the caller's thread works too), as the BLAS under NumPy shares a matrix product.
The default count is ``LAMB_EDU_NUM_THREADS``, else ``OMP_NUM_THREADS`` (what that BLAS reads), else
the number of cores, at most 8; ``set_num_threads`` changes it. Used by the blocked elementwise
operations (``nn.functional.blocks``); the optimizers' fast path follows the same rule.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["threads_from_environment", "set_num_threads", "num_threads", "worker_pool"]


def threads_from_environment() -> int:
    """The default thread count: LAMB_EDU_NUM_THREADS, else OMP_NUM_THREADS, else the cores (at most 8)."""
    for variable in ("LAMB_EDU_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


_threads = threads_from_environment()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool): a forked child makes its own


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads (the caller's included); 1 runs everything in the caller."""
    global _threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"invalid threads: {threads!r} (must be an integer >= 1)")
    _threads = threads


def num_threads() -> int:
    """The number of threads the parallel loops use."""
    return _threads


def worker_pool() -> ThreadPoolExecutor:
    """The pool of ``num_threads() - 1`` workers (made again after a fork or a change of count)."""
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), _threads):
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False)  # the count changed: let the old threads go
        _pool = (os.getpid(), _threads, ThreadPoolExecutor(max_workers=max(1, _threads - 1),
                                                            thread_name_prefix="lamb_edu_blocks"))
    return _pool[2]
