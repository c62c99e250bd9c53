"""The fast path: Adam, AdamW and LAMB computed from the same pieces, with fewer trips to memory.

An implementation detail: every rule is written once, in ``optim.functional``, and read in its
optimizer's ``update``. This module runs those pieces (``update_moments``, ``add_decayed_weights``,
``trust_ratio``) on cache-sized blocks, on threads, or on the GPU as the CUDA kernels of
``optim.cuda_kernels`` (fed ``moment_weights``; LAMB's norms come back once per step);
``tests/test_fast_paths.py`` checks it equal to the readable form and to float64 references.
``Optimizer.step`` sends it the parameters of an optimizer with ``fused=True`` (the default) and a
``fast_rule``, and it hands back those it cannot take (not contiguous, mixed dtypes, AMSGrad).

Why the readable form is slow on a large model. Each NumPy operation walks the whole array: for
25M parameters every ``xp.multiply(m, beta1, out=m)`` reads and writes 100 MB of main memory, and an
Adam step is a dozen such operations, about 100 bytes of memory traffic per parameter where the
step needs only 28 (read w, g, m, v; write w, m, v). Three changes, none of them to the maths:

1. Blocks. The pieces run on slices of ``BLOCK_SIZE`` elements (128K floats, 512 KB), so the
   dozen operations work on data in the core's own cache and main memory is touched about once.
2. Threads. A NumPy operation runs on one core, but it releases the GIL while it computes, so the
   work is shared between a few threads (``set_num_threads``; the caller's thread works too). A
   model of many tensors gives each thread whole tensors (``for_each_tensor``); one large tensor is
   cut into blocks that the threads share.
3. Algebra. √v̂ + eps = (√v + eps·√bc2)/√bc2 with bc2 = 1 − β2ᵗ, so
   m̂/(√v̂ + eps) = (√bc2/bc1)·m/(√v + eps·√bc2): the bias corrections become one scalar factor.

LAMB needs ‖u‖ over the whole tensor before it can apply u, so it makes two passes: the first
updates m and v, computes u block by block, adds up ‖w‖² and ‖u‖² (a dot per block, summed in
float64) and keeps u in a reusable workspace; the second applies w ← w − lr·trust_ratio·u. A tensor
of up to ``WORKSPACE_LIMIT`` elements stays in the shared cache between the passes; a larger one
recomputes u from the new m and v in the second pass (identical numbers) instead of storing it.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from lamb_edu import backend
from lamb_edu.backend import xp
from lamb_edu.optim import cuda_kernels
from lamb_edu.optim.cuda_kernels import MOMENTS_CUDA  # noqa: F401  (the kernels' moment line, also read by tests)
from lamb_edu.optim.functional import add_decayed_weights, bias_corrections, moment_weights, trust_ratio, update_moments

__all__ = ["BLOCK_SIZE", "supports", "set_num_threads", "num_threads", "for_each_tensor", "update", "adam_step", "lamb_step"]

BLOCK_SIZE = 1 << 17  # elements per block (512 KB of float32): big enough that NumPy's per-call cost is small
MIN_BLOCK = 1 << 16  # mid-sized tensors use blocks down to this size, so that every thread gets a share
PARALLEL_MIN = 1 << 19  # below this many elements one thread is faster than handing work out
WORKSPACE_LIMIT = 1 << 22  # LAMB keeps u for tensors up to this size (16 MB of float32, one per thread)


# ---------------------------------------------------------------------------------------- threads
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


def _parallel(function: Callable[[int, int, int], Any], size: int) -> list[Any]:
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


def _scratch(dtype: Any, slot: int) -> Any:
    """This thread's scratch block number ``slot`` (BLOCK_SIZE elements of ``dtype``; slice it)."""
    return _thread_array(("scratch", dtype, slot), BLOCK_SIZE, dtype)


def _workspace(size: int, dtype: Any) -> Any:
    """A flat array of ``size`` elements owned by the calling thread (LAMB's stored u)."""
    return _thread_array(("workspace", dtype), size, dtype)


# ---------------------------------------------------------------------------------------- checks
def supports(*arrays: Any) -> bool:
    """True when the fast form applies: contiguous float32/float64 arrays of one dtype and shape.

    NumPy arrays take the blocked path; CuPy arrays (on the CuPy backend) the fused kernels.
    """
    first = arrays[0]
    if first.dtype.kind != "f" or first.dtype.itemsize not in (4, 8):
        return False
    host = isinstance(first, backend.np.ndarray)
    for array in arrays:
        if array.dtype != first.dtype or array.shape != first.shape or not array.flags.c_contiguous:
            return False
        if isinstance(array, backend.np.ndarray) != host:
            return False
    return host or backend.is_gpu()


def _flat(array: Any) -> Any:
    return array.reshape(-1)


# ---------------------------------------------------------------------------------------- dispatch
def update(rule: str, visits: list[Any], grad_scale: float) -> list[Any]:
    """Step every (p, grad, group, state) that ``rule`` ('adam', 'adamw', 'lamb') can take; return the rest.

    The taken ones go to ``for_each_tensor`` (whole tensors on threads); the rest are for the
    optimizer's readable ``update``. Device arrays go to ``_update_on_device``.
    """
    step = _RULES[rule]
    taken, rest = [], []
    for visit in visits:
        p, grad, group, state = visit
        fits = not group.get("amsgrad", False) and supports(p.data, grad, state["m"], state["v"])
        (taken if fits else rest).append(visit)
    on_device = [visit for visit in taken if not isinstance(visit[0].data, backend.np.ndarray)]
    on_host = [visit for visit in taken if isinstance(visit[0].data, backend.np.ndarray)]
    for_each_tensor(lambda visit: step(*visit, grad_scale), on_host, [visit[0].data for visit in on_host])
    if on_device:
        _update_on_device(rule, on_device, grad_scale)
    return rest


def _update_on_device(rule: str, visits: list[Any], grad_scale: float) -> None:
    """The GPU: every tensor's kernels queued in turn; LAMB's norms come back in one copy at the end."""
    if rule != "lamb":
        for visit in visits:
            _RULES[rule](*visit, grad_scale)
        return
    records = xp.empty((len(visits), len(cuda_kernels.RECORD_FIELDS)), dtype=backend.np.float64)
    for i, visit in enumerate(visits):
        _lamb_visit(*visit, grad_scale, record=records[i])
    for visit, row in zip(visits, backend.to_numpy(records)):  # the step's one wait for the GPU
        visit[3]["weight_norm"], visit[3]["update_norm"], visit[3]["trust_ratio"] = (float(x) for x in row[:3])


def _adam_visit(p: Any, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float,
                decoupled: bool = False) -> None:
    (beta1, beta2) = group["betas"]
    state["step"] += 1
    adam_step(p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
              weight_decay=group["weight_decay"], decoupled=decoupled, step=state["step"],
              bias_correction=group["bias_correction"])


def _lamb_visit(p: Any, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float,
                record: Any = None) -> None:
    (beta1, beta2) = group["betas"]
    state["step"] += 1
    measured = lamb_step(
        p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
        weight_decay=group["weight_decay"], step=state["step"], bias_correction=group["bias_correction"],
        grad_scale=grad_scale, grad_averaging=group["grad_averaging"], clamp_value=group["clamp_value"],
        trust_clip=group["trust_clip"], use_trust_ratio=group["use_trust_ratio"], record=record)
    if record is None:
        state["weight_norm"], state["update_norm"], state["trust_ratio"] = measured


_RULES: dict[str, Callable[..., None]] = {
    "adam": _adam_visit,
    "adamw": lambda *visit: _adam_visit(*visit, decoupled=True),
    "lamb": _lamb_visit,
}


# ---------------------------------------------------------------------------------------- Adam
def adam_step(
    param: Any, grad: Any, m: Any, v: Any, *, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, decoupled: bool, step: int, bias_correction: bool = True,
) -> None:
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step, in place on param, m and v.

    The equations of ``adam.py``: g ← g + weight_decay·w (Adam) or w ← (1 − lr·weight_decay)·w
    (AdamW); ``update_moments``; w ← w − lr·m̂/(√v̂ + eps). ``step`` is t after this step (1 at the
    first). The arrays must pass ``supports``.
    """
    bias_correction1, bias_correction2 = bias_corrections(step, beta1, beta2, bias_correction)
    eps_hat = eps * math.sqrt(bias_correction2)
    step_size = lr * math.sqrt(bias_correction2) / bias_correction1
    decay_factor = 1.0 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    if not isinstance(param, backend.np.ndarray):
        m_weight, v_weight = moment_weights(beta1, beta2)
        cuda_kernels.adam_step(param, grad, m, v, dict(
            beta1=beta1, beta2=beta2, m_weight=m_weight, v_weight=v_weight, eps_hat=eps_hat, step_size=step_size,
            decay_factor=decay_factor, l2=l2))
        return
    w, g, m, v = _flat(param), _flat(grad), _flat(m), _flat(v)
    np = backend.np

    def update_blocks(start: int, stop: int, block: int) -> None:
        t, decayed = _scratch(w.dtype, 0), _scratch(w.dtype, 1)
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            wb, gb, mb, vb, tb = w[begin:end], g[begin:end], m[begin:end], v[begin:end], t[: end - begin]
            gb = add_decayed_weights(gb, wb, l2, out=decayed[: end - begin])  # Adam: g ← g + λ·w
            if decay_factor != 1.0:  # AdamW: w ← (1 − lr·λ)·w
                np.multiply(wb, decay_factor, out=wb)
            update_moments(mb, vb, gb, beta1, beta2, scratch=tb)
            _scaled_direction(mb, vb, eps_hat, out=tb)  # w ← w − step_size·m/(√v + eps_hat)
            np.multiply(tb, step_size, out=tb)
            np.subtract(wb, tb, out=wb)

    _parallel(update_blocks, w.size)


def _scaled_direction(m: Any, v: Any, eps_hat: float, out: Any) -> Any:
    """m/(√v + eps_hat): the Adam direction m̂/(√v̂ + eps) divided by √bc2/bc1 (see 3. above)."""
    np = backend.np
    np.sqrt(v, out=out)
    np.add(out, eps_hat, out=out)
    return np.divide(m, out, out=out)


# ---------------------------------------------------------------------------------------- LAMB
def lamb_step(
    param: Any, grad: Any, m: Any, v: Any, *, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, step: int, bias_correction: bool = True, grad_scale: float = 1.0,
    grad_averaging: bool = True, clamp_value: float | None = 10.0, trust_clip: bool = False,
    use_trust_ratio: bool = True, record: Any = None,
) -> tuple[float, float, float] | None:
    """One LAMB step in place on param, m and v; returns (weight_norm, update_norm, trust_ratio).

    On the GPU a float64 device array ``record`` of 4 may be given instead: the norms, the ratio
    and the step are then left there (``cuda_kernels.RECORD_FIELDS``), nothing waits for the GPU,
    and None is returned.

    The equations of ``lamb.py``: ``update_moments`` with g = grad_scale·grad; u ← m̂/(√v̂ + eps) +
    weight_decay·w; the ratio from ‖w‖ and ‖u‖ (``functional.trust_ratio``); w ← w − lr·trust_ratio·u
    (ratio 1 if not ``use_trust_ratio``).
    """
    bias_correction1, bias_correction2 = bias_corrections(step, beta1, beta2, bias_correction)
    eps_hat = eps * math.sqrt(bias_correction2)
    direction_scale = math.sqrt(bias_correction2) / bias_correction1
    moments = dict(beta1=beta1, beta2=beta2, grad_scale=grad_scale, grad_averaging=grad_averaging)
    if not isinstance(param, backend.np.ndarray):
        m_weight, v_weight = moment_weights(**moments)
        return cuda_kernels.lamb_step(param, grad, m, v, dict(
            beta1=beta1, beta2=beta2, m_weight=m_weight, v_weight=v_weight, eps_hat=eps_hat,
            direction_scale=direction_scale, weight_decay=weight_decay), dict(
            lr=lr, clamp_value=clamp_value, trust_clip=trust_clip, use_trust_ratio=use_trust_ratio), record)
    # the blocks hold u/direction_scale (one pass fewer); the scale comes back in the norm and the step
    blocks = dict(eps_hat=eps_hat, weight_decay=weight_decay / direction_scale)
    sums, update = _lamb_first_pass(_flat(param), _flat(grad), _flat(m), _flat(v), moments, blocks)
    weight_norm, update_norm = math.sqrt(sums[0]), direction_scale * math.sqrt(sums[1])
    ratio = trust_ratio(weight_norm, update_norm, clamp_value=clamp_value, trust_clip=trust_clip)
    scale = lr * (ratio if use_trust_ratio else 1.0) * direction_scale
    _lamb_second_pass(_flat(param), _flat(m), _flat(v), update, scale, blocks)
    return weight_norm, update_norm, ratio


def _direction_block(w: Any, m: Any, v: Any, u: Any, t: Any, eps_hat: float, weight_decay: float) -> None:
    """u ← m/(√v + eps_hat) + weight_decay·w on one block (t is scratch).

    ``lamb_step`` passes weight_decay/direction_scale, so u is LAMB's update/direction_scale.
    """
    _scaled_direction(m, v, eps_hat, out=u)
    add_decayed_weights(u, w, weight_decay, out=u, scratch=t)


def _lamb_first_pass(w: Any, g: Any, m: Any, v: Any, moments: dict[str, Any],
                     blocks: dict[str, float]) -> tuple[list[float], Any]:
    """Update m and v, compute u (kept in a workspace when it fits), return [‖w‖², ‖u‖²] and u."""
    np = backend.np
    update = _workspace(w.size, w.dtype) if w.size <= WORKSPACE_LIMIT else None

    def first_pass(start: int, stop: int, block: int) -> list[tuple[float, float]]:
        t, own = _scratch(w.dtype, 0), _scratch(w.dtype, 2)
        sums = []
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            wb, mb, vb, tb = w[begin:end], m[begin:end], v[begin:end], t[: end - begin]
            ub = update[begin:end] if update is not None else own[: end - begin]
            update_moments(mb, vb, g[begin:end], scratch=tb, **moments)
            _direction_block(wb, mb, vb, ub, tb, **blocks)
            sums.append((float(np.dot(wb, wb)), float(np.dot(ub, ub))))
        return sums

    # added block by block in order, so the norms do not depend on the thread count
    sums = [pair for part in _parallel(first_pass, w.size) for pair in part]
    return [sum(pair[0] for pair in sums), sum(pair[1] for pair in sums)], update


def _lamb_second_pass(w: Any, m: Any, v: Any, update: Any, scale: float, blocks: dict[str, float]) -> None:
    """w ← w − scale·u, with u from the workspace or recomputed from the new m and v."""
    np = backend.np

    def second_pass(start: int, stop: int, block: int) -> None:
        if update is not None:  # u is stored: two operations over the whole range, no blocks needed
            np.multiply(update[start:stop], scale, out=update[start:stop])
            np.subtract(w[start:stop], update[start:stop], out=w[start:stop])
            return
        t, own = _scratch(w.dtype, 0), _scratch(w.dtype, 2)
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            ub = own[: end - begin]
            _direction_block(w[begin:end], m[begin:end], v[begin:end], ub, t[: end - begin], **blocks)
            np.multiply(ub, scale, out=ub)
            np.subtract(w[begin:end], ub, out=w[begin:end])

    _parallel(second_pass, w.size)
