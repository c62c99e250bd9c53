"""Fast forms of the Adam, AdamW and LAMB updates: the same equations, fewer trips to memory.

The readable form of each rule lives in its optimizer's file (``adam.py``, ``lamb.py``) and stays the
reference: read those to learn the method. This file computes the same numbers, to float32
rounding, the way a fast optimizer does. The optimizers call it for NumPy float32/float64 arrays
and for CuPy arrays (``fused=True``, the default); ``fused=False`` runs the readable form.

Why the readable form is slow on a large model. Each NumPy operation walks the whole array: for
25M parameters every ``xp.multiply(m, beta1, out=m)`` reads and writes 100 MB of main memory, and an
Adam step is a dozen such operations, about 100 bytes of memory traffic per parameter where the
step needs only 28 (read w, g, m, v; write w, m, v). Three changes, none of them to the maths:

1. Blocks. The update runs over slices of ``BLOCK_SIZE`` elements (128K floats, 512 KB), so the
   dozen operations work on data in the core's own cache and main memory is touched about once.
2. Threads. A NumPy operation runs on one core, but it releases the GIL while it computes, so the
   work is shared between a few threads (``set_num_threads``; the caller's thread works too). A
   model of many tensors gives each thread whole tensors (``for_each_tensor``, which the optimizers
   call); one large tensor is cut into blocks that the threads share.
3. Algebra. √v̂ + eps = (√v + eps·√bc2)/√bc2 with bc2 = 1 − β2ᵗ, so
   m̂/(√v̂ + eps) = (√bc2/bc1)·m/(√v + eps·√bc2): the bias corrections become one scalar factor.

LAMB needs ‖u‖ over the whole tensor before it can apply u, so it makes two passes: the first
updates m and v, computes u block by block, adds up ‖w‖² and ‖u‖² (a float32 dot per block, summed in float64) and
keeps u in a reusable workspace; the second applies w ← w − lr·trust_ratio·u. A tensor of up to
``WORKSPACE_LIMIT`` elements stays in the shared cache between the passes; a larger one recomputes
u from the new m and v in the second pass (identical numbers) instead of storing it.

On CuPy the Adam/AdamW step is one ``ElementwiseKernel`` (each element read and written once), and
LAMB is an elementwise kernel for m, v and u, a sum-of-squares ``ReductionKernel`` for the two
norms, and a second elementwise kernel for w.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from lamb_edu import backend
from lamb_edu.backend import xp
from lamb_edu.optim.functional import trust_ratio

__all__ = ["BLOCK_SIZE", "supports", "set_num_threads", "num_threads", "for_each_tensor", "adam_step", "lamb_step"]

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


def _scratch(dtype: Any, slot: int) -> Any:
    """This thread's scratch block number ``slot`` (BLOCK_SIZE elements of ``dtype``; slice it)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (dtype, slot, BLOCK_SIZE)
    if key not in buffers:
        buffers[key] = xp.empty(BLOCK_SIZE, dtype=dtype)
    return buffers[key]


def _workspace(size: int, dtype: Any) -> Any:
    """A flat array of ``size`` elements owned by the calling thread, grown only when needed."""
    key = dtype
    spaces = getattr(_local, "workspaces", None)
    if spaces is None:
        spaces = _local.workspaces = {}
    if key not in spaces or spaces[key].size < size:
        spaces[key] = xp.empty(size, dtype=dtype)
    return spaces[key][:size]


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


# ---------------------------------------------------------------------------------------- Adam
def adam_step(
    param: Any, grad: Any, m: Any, v: Any, *, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, decoupled: bool, step: int, bias_correction: bool = True,
) -> None:
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step, in place on param, m and v.

    The equations of ``adam.py``: g ← g + weight_decay·w (Adam) or w ← (1 − lr·weight_decay)·w
    (AdamW); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; w ← w − lr·m̂/(√v̂ + eps). ``step`` is t
    after this step (1 at the first). The arrays must pass ``supports``.
    """
    bias_correction1 = 1.0 - beta1**step if bias_correction else 1.0
    bias_correction2 = 1.0 - beta2**step if bias_correction else 1.0
    root_bias_correction2 = math.sqrt(bias_correction2)
    constants = dict(
        beta1=beta1, beta3=1.0 - beta1, beta2=beta2, one_minus_beta2=1.0 - beta2,
        eps_hat=eps * root_bias_correction2, step_size=lr * root_bias_correction2 / bias_correction1,
        decay_factor=1.0 - lr * weight_decay if decoupled else 1.0, l2=weight_decay if not decoupled else 0.0,
    )
    if not isinstance(param, backend.np.ndarray):
        _cupy_adam(param, grad, m, v, beta1, beta2, constants["eps_hat"], constants["step_size"],
                   constants["decay_factor"], constants["l2"])
        return
    w, g, m, v = _flat(param), _flat(grad), _flat(m), _flat(v)
    c = _cast(constants, w.dtype)
    np = backend.np

    def update(start: int, stop: int, block: int) -> None:
        t = _scratch(w.dtype, 0)
        decayed = _scratch(w.dtype, 1)
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            wb, gb, mb, vb, tb = w[begin:end], g[begin:end], m[begin:end], v[begin:end], t[: end - begin]
            if constants["l2"] != 0.0:  # Adam: g ← g + weight_decay·w
                gb = np.add(gb, np.multiply(wb, c["l2"], out=decayed[: end - begin]), out=decayed[: end - begin])
            if constants["decay_factor"] != 1.0:  # AdamW: w ← (1 − lr·weight_decay)·w
                np.multiply(wb, c["decay_factor"], out=wb)
            _moments_block(mb, vb, gb, tb, c)
            np.sqrt(vb, out=tb)  # w ← w − step_size·m/(√v + eps_hat)
            np.add(tb, c["eps_hat"], out=tb)
            np.divide(mb, tb, out=tb)
            np.multiply(tb, c["step_size"], out=tb)
            np.subtract(wb, tb, out=wb)

    _parallel(update, w.size)


def _cast(constants: dict[str, float], dtype: Any) -> dict[str, Any]:
    """The constants as scalars of the arrays' dtype: a Python float costs a conversion in every call."""
    return {name: dtype.type(value) for name, value in constants.items()}


def _moments_block(m: Any, v: Any, g: Any, t: Any, c: dict[str, Any]) -> None:
    """m ← β1·m + β3·g and v ← β2·v + (1−β2)·g² on one block (t is scratch)."""
    np = backend.np
    np.multiply(m, c["beta1"], out=m)
    if c["beta3"] == 1.0:
        np.add(m, g, out=m)
    else:
        np.add(m, np.multiply(g, c["beta3"], out=t), out=m)
    np.multiply(v, c["beta2"], out=v)
    np.multiply(g, g, out=t)
    np.multiply(t, c["one_minus_beta2"], out=t)
    np.add(v, t, out=v)


# ---------------------------------------------------------------------------------------- LAMB
def lamb_step(
    param: Any, grad: Any, m: Any, v: Any, *, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, step: int, bias_correction: bool = True, grad_scale: float = 1.0,
    grad_averaging: bool = True, clamp_value: float | None = 10.0, trust_clip: bool = False,
    use_trust_ratio: bool = True,
) -> tuple[float, float, float]:
    """One LAMB step in place on param, m and v; returns (weight_norm, update_norm, trust_ratio).

    The equations of ``lamb.py``: g ← grad_scale·g; m ← β1·m + (1−β1)·g (β1·m + g without grad
    averaging); v ← β2·v + (1−β2)·g²; u ← m̂/(√v̂ + eps) + weight_decay·w; trust_ratio from ‖w‖ and
    ‖u‖ (``functional.trust_ratio``); w ← w − lr·trust_ratio·u (ratio 1 if not ``use_trust_ratio``).
    """
    bias_correction1 = 1.0 - beta1**step if bias_correction else 1.0
    bias_correction2 = 1.0 - beta2**step if bias_correction else 1.0
    root_bias_correction2 = math.sqrt(bias_correction2)
    constants = dict(
        beta1=beta1, beta3=(1.0 - beta1) if grad_averaging else 1.0, beta2=beta2, one_minus_beta2=1.0 - beta2,
        eps_hat=eps * root_bias_correction2, direction_scale=root_bias_correction2 / bias_correction1,
        weight_decay=weight_decay, grad_scale=grad_scale,
    )
    if isinstance(param, backend.np.ndarray):
        # the blocks hold u/direction_scale (one pass fewer); the scale comes back in the norm and the step
        unscaled = _cast(dict(constants, weight_decay=weight_decay / constants["direction_scale"]), param.dtype)
        sums, update = _lamb_first_pass(_flat(param), _flat(grad), _flat(m), _flat(v), unscaled)
        update_scale = constants["direction_scale"]
    else:
        sums, update = _cupy_lamb_first_pass(param, grad, m, v, constants)
        update_scale = 1.0
    weight_norm, update_norm = math.sqrt(sums[0]), update_scale * math.sqrt(sums[1])
    ratio = trust_ratio(weight_norm, update_norm, clamp_value=clamp_value, trust_clip=trust_clip)
    scale = lr * (ratio if use_trust_ratio else 1.0) * update_scale
    if isinstance(param, backend.np.ndarray):
        _lamb_second_pass(_flat(param), _flat(m), _flat(v), update, param.dtype.type(scale), unscaled)
    else:
        _cupy_lamb_second_pass(param, update, scale)
    return weight_norm, update_norm, ratio


def _direction_block(w: Any, m: Any, v: Any, u: Any, t: Any, c: dict[str, Any]) -> None:
    """u ← m/(√v + eps_hat) + weight_decay·w on one block (t is scratch).

    ``lamb_step`` passes weight_decay/direction_scale here, so u is LAMB's update/direction_scale.
    """
    np = backend.np
    np.sqrt(v, out=u)
    np.add(u, c["eps_hat"], out=u)
    np.divide(m, u, out=u)
    if c["weight_decay"] != 0.0:
        np.add(u, np.multiply(w, c["weight_decay"], out=t), out=u)


def _lamb_first_pass(w: Any, g: Any, m: Any, v: Any, c: dict[str, Any]) -> tuple[list[float], Any]:
    """Update m and v, compute u (kept in a workspace when it fits), return [‖w‖², ‖u‖²] and u.

    The loop is ``_moments_block`` and ``_direction_block`` written out, with every constant and
    branch decided before it: it runs hundreds of times per step on each thread, and the Python work
    in it holds the GIL that the other threads are waiting for.
    """
    np = backend.np
    update = _workspace(w.size, w.dtype) if w.size <= WORKSPACE_LIMIT else None
    beta1, beta3, beta2, one_minus_beta2 = c["beta1"], c["beta3"], c["beta2"], c["one_minus_beta2"]
    eps_hat, weight_decay, grad_scale = c["eps_hat"], c["weight_decay"], c["grad_scale"]
    scale_grad, average_grad, decay = grad_scale != 1.0, beta3 != 1.0, weight_decay != 0.0

    def first_pass(start: int, stop: int, block: int) -> list[tuple[float, float]]:
        t, scaled, own = _scratch(w.dtype, 0), _scratch(w.dtype, 1), _scratch(w.dtype, 2)
        sums = []
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            n = end - begin
            wb, gb, mb, vb, tb = w[begin:end], g[begin:end], m[begin:end], v[begin:end], t[:n]
            ub = update[begin:end] if update is not None else own[:n]
            if scale_grad:
                gb = np.multiply(gb, grad_scale, out=scaled[:n])
            np.multiply(mb, beta1, out=mb)  # m ← β1·m + β3·g
            np.add(mb, np.multiply(gb, beta3, out=tb) if average_grad else gb, out=mb)
            np.multiply(vb, beta2, out=vb)  # v ← β2·v + (1 − β2)·g²
            np.multiply(gb, gb, out=tb)
            np.multiply(tb, one_minus_beta2, out=tb)
            np.add(vb, tb, out=vb)
            np.sqrt(vb, out=ub)  # u ← m/(√v + eps_hat) + weight_decay·w
            np.add(ub, eps_hat, out=ub)
            np.divide(mb, ub, out=ub)
            if decay:
                np.add(ub, np.multiply(wb, weight_decay, out=tb), out=ub)
            sums.append((float(np.dot(wb, wb)), float(np.dot(ub, ub))))
        return sums

    # added block by block in order, so the norms do not depend on the thread count
    sums = [pair for part in _parallel(first_pass, w.size) for pair in part]
    return [sum(pair[0] for pair in sums), sum(pair[1] for pair in sums)], update


def _lamb_second_pass(w: Any, m: Any, v: Any, update: Any, scale: Any, c: dict[str, Any]) -> None:
    """w ← w − scale·u, with u from the workspace or recomputed from the new m and v."""
    np = backend.np

    def second_pass(start: int, stop: int, block: int) -> None:
        if update is not None:  # u is stored: two operations over the whole range, no blocks needed
            np.multiply(update[start:stop], scale, out=update[start:stop])
            np.subtract(w[start:stop], update[start:stop], out=w[start:stop])
            return
        t = _scratch(w.dtype, 0)
        own = _scratch(w.dtype, 2)
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            ub = own[: end - begin]
            _direction_block(w[begin:end], m[begin:end], v[begin:end], ub, t[: end - begin], c)
            np.multiply(ub, scale, out=ub)
            np.subtract(w[begin:end], ub, out=w[begin:end])

    _parallel(second_pass, w.size)


# ---------------------------------------------------------------------------------------- CuPy
_kernels: dict[str, Any] = {}


def _cupy_kernels() -> dict[str, Any]:
    """Compile (once, on first use) the CuPy kernels; ``T`` is the arrays' dtype."""
    if _kernels:
        return _kernels
    # Only reached on the CuPy backend, where ``xp`` is cupy and has the kernel builders.
    _kernels["adam"] = xp.ElementwiseKernel(
        "T grad, T beta1, T beta2, T eps_hat, T step_size, T decay_factor, T l2",
        "T param, T m, T v",
        """
        T g = grad + l2 * param;             // Adam: L2 term (l2 = 0 for AdamW)
        param = param * decay_factor;        // AdamW: decoupled decay (factor 1 for Adam)
        m = beta1 * m + (1 - beta1) * g;
        v = beta2 * v + (1 - beta2) * g * g;
        param = param - step_size * m / (sqrt(v) + eps_hat);
        """,
        "lamb_edu_adam_step",
    )
    _kernels["lamb_direction"] = xp.ElementwiseKernel(
        "T grad, T param, T beta1, T beta3, T beta2, T eps_hat, T direction_scale, T weight_decay, T grad_scale",
        "T m, T v, T update",
        """
        T g = grad_scale * grad;
        m = beta1 * m + beta3 * g;
        v = beta2 * v + (1 - beta2) * g * g;
        update = direction_scale * m / (sqrt(v) + eps_hat) + weight_decay * param;
        """,
        "lamb_edu_lamb_direction",
    )
    _kernels["squared_norm"] = xp.ReductionKernel(
        "T x", "float64 total", "(double)x * (double)x", "a + b", "total = a", "0", "lamb_edu_squared_norm",
    )
    _kernels["lamb_apply"] = xp.ElementwiseKernel(
        "T update, T scale", "T param", "param = param - scale * update", "lamb_edu_lamb_apply",
    )
    return _kernels


def _cupy_adam(param: Any, grad: Any, m: Any, v: Any, beta1: float, beta2: float, eps_hat: float,
               step_size: float, decay_factor: float, l2: float) -> None:
    cast = param.dtype.type
    _cupy_kernels()["adam"](grad, cast(beta1), cast(beta2), cast(eps_hat), cast(step_size), cast(decay_factor),
                            cast(l2), param, m, v)


def _cupy_lamb_first_pass(param: Any, grad: Any, m: Any, v: Any, c: dict[str, float]) -> tuple[list[float], Any]:
    kernels, cast = _cupy_kernels(), param.dtype.type
    update = _workspace(param.size, param.dtype).reshape(param.shape)
    kernels["lamb_direction"](grad, param, *(cast(c[name]) for name in (
        "beta1", "beta3", "beta2", "eps_hat", "direction_scale", "weight_decay", "grad_scale")), m, v, update)
    sums = [float(kernels["squared_norm"](param)), float(kernels["squared_norm"](update))]
    return sums, update


def _cupy_lamb_second_pass(param: Any, update: Any, scale: float) -> None:
    _cupy_kernels()["lamb_apply"](update, param.dtype.type(scale), param)
