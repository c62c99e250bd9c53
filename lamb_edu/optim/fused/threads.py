"""Blocks and threads for the fused optimizer steps: cache-sized pieces of an array, shared by a few threads.

A NumPy operation runs on one core but releases the GIL while it computes, so a few threads (the
caller's included, ``set_num_threads``) can share an optimizer step: whole tensors each
(``for_each_tensor``), or the blocks of one large tensor (``parallel``). Each thread has its own
scratch blocks and LAMB workspace (``scratch``, ``workspace``). Nothing here knows an optimizer's
rule: ``fused.blocked`` passes its block functions in.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from lamb_edu import backend
from lamb_edu.backend import xp

__all__ = ["BLOCK_SIZE", "set_num_threads", "num_threads", "for_each_tensor", "parallel",
           "scratch", "workspace"]

BLOCK_SIZE = 1 << 17  # elements per block (512 KB of float32): big enough that NumPy's per-call cost is small
MIN_BLOCK = 1 << 16  # mid-sized tensors use blocks down to this size, so that every thread gets a share
PARALLEL_MIN = 1 << 19  # below this many elements one thread is faster than handing work out


def _default_threads() -> int:
    for variable in ("LAMB_EDU_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None
_pool_owner = (0, 0)  # (pid, threads) the pool was made for: a forked child makes its own
_local = threading.local()  # each thread's scratch blocks and LAMB workspace


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads (the caller's included) for the fast updates of large tensors.

    The default is ``LAMB_EDU_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of cores
    (at most 8). One thread gives exactly the same numbers: each block is computed the same way.
    """
    global _threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"invalid threads: {threads!r} (must be an integer >= 1)")
    _threads = threads


def num_threads() -> int:
    """The number of threads the fast updates use."""
    return _threads


def _worker_pool() -> ThreadPoolExecutor:
    global _pool, _pool_owner
    owner = (os.getpid(), _threads)
    if _pool is None or _pool_owner != owner:
        if _pool is not None and _pool_owner[0] == owner[0]:
            _pool.shutdown(wait=False)  # the thread count changed: let the old threads go
        _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="lamb_edu")
        _pool_owner = owner
    return _pool


def _block_size(size: int) -> int:
    """Elements per block for an array of ``size``: BLOCK_SIZE, or smaller so there are about 8 blocks.

    It depends on the size alone, never on the thread count, so the blocks (and the float32 partial
    sums of LAMB's norms) are the same however many threads share them.
    """
    return min(BLOCK_SIZE, max(MIN_BLOCK, -(-size // 8)))


def parallel(function: Callable[[int, int, int], Any], size: int) -> list[Any]:
    """Run ``function(start, stop, block)`` over ``[0, size)`` cut into one piece per thread.

    The pieces start on block boundaries; the results come back in order.
    """
    block = _block_size(size)
    blocks = -(-size // block)
    whole_tensors = getattr(_local, "whole_tensors", False)  # inside for_each_tensor: this thread has its own tensor
    pieces = min(_threads, blocks) if size >= PARALLEL_MIN and not whole_tensors else 1
    if pieces == 1:
        return [function(0, size, block)]
    bounds = [min(size, (blocks * i // pieces) * block) for i in range(pieces + 1)]
    pool = _worker_pool()
    futures = [pool.submit(function, bounds[i], bounds[i + 1], block) for i in range(1, pieces)]
    results = [function(bounds[0], bounds[1], block)]
    results.extend(future.result() for future in futures)
    return results


def for_each_tensor(update: Callable[[Any], None], items: Sequence[Any], arrays: Sequence[Any]) -> None:
    """Call ``update(item)`` for every item, handing whole tensors to the threads; ``arrays[i]`` is item i's array.

    Splitting one tensor between the threads makes them wait for each other twice per tensor (LAMB
    needs both halves' norms before its second pass, and a woken thread starts tens of microseconds
    late). With many tensors it is faster for each thread to take whole tensors, largest first, from
    one shared list until it is empty: the threads wait once per step. A tensor larger than
    1/threads of the total (it would leave the other threads idle), every CuPy array, and all of a
    small model (under ``PARALLEL_MIN`` elements) are updated in the calling thread instead, where
    ``update`` may still split a large tensor into blocks. A tensor's numbers do not depend on
    which thread computes it.
    """
    sizes = [array.size if isinstance(array, backend.np.ndarray) else None for array in arrays]
    total = sum(size for size in sizes if size is not None)
    shared: list[int] = []
    if _threads > 1 and total >= PARALLEL_MIN and not getattr(_local, "whole_tensors", False):
        shared = [i for i, size in enumerate(sizes) if size is not None and size * _threads <= total]
    chosen = set(shared)
    for i, item in enumerate(items):
        if i not in chosen:
            update(item)
    if not shared:
        return
    shared.sort(key=lambda i: -sizes[i])  # largest first, so the threads run out of work close together
    queue = iter(shared)  # next() on a list iterator is atomic under the GIL: each tensor goes to one thread

    def work() -> None:
        _local.whole_tensors = True
        try:
            for i in queue:
                update(items[i])
        finally:
            _local.whole_tensors = False

    futures = [_worker_pool().submit(work) for _ in range(min(_threads, len(shared)) - 1)]
    try:
        work()
    finally:
        for future in futures:
            future.result()  # waits for every thread; re-raises a worker's exception


def _thread_array(key: Any, size: int, dtype: Any) -> Any:
    """The calling thread's flat array ``key``: ``size`` elements of ``dtype``, grown only when needed."""
    arrays = _local.__dict__.setdefault("arrays", {})
    if key not in arrays or arrays[key].size < size:
        arrays[key] = xp.empty(size, dtype=dtype)
    return arrays[key][:size]


def scratch(dtype: Any, slot: int) -> Any:
    """This thread's scratch block number ``slot`` (BLOCK_SIZE elements of ``dtype``; slice it)."""
    return _thread_array(("scratch", dtype, slot), BLOCK_SIZE, dtype)


def workspace(size: int, dtype: Any) -> Any:
    """A flat array of ``size`` elements owned by the calling thread (LAMB's stored u)."""
    return _thread_array(("workspace", dtype), size, dtype)
