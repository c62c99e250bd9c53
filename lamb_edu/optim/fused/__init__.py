"""The fused form: Adam, AdamW and LAMB computed from the same pieces, with fewer trips to memory.

An implementation detail: every rule is written once, in ``optim.functional``, and read in its
optimizer's ``update``. This package runs those pieces (``update_moments``, ``add_decayed_weights``,
``trust_ratio``) on cache-sized blocks, on threads (``fused.threads``, ``fused.blocked``), or on the
GPU as the CUDA kernels of ``fused.cuda`` (fed ``moment_weights`` and ``adam_weight_decay``; LAMB's
norms come back once per step); ``tests/test_fast_paths.py`` checks it equal to the readable form
and to float64 references. ``Optimizer.step`` calls the optimizer's ``fused_update`` when
``fused=True`` (the default): ``Adam.fused_update`` is ``fused.adam``, ``LAMB.fused_update`` is
``fused.lamb``; each steps what it can and hands back the rest (not contiguous, mixed dtypes, AMSGrad).

Why the readable form is slow on a large model. Each NumPy operation walks the whole array: for
25M parameters every ``xp.multiply(m, beta1, out=m)`` reads and writes 100 MB of main memory, and an
Adam step is a dozen such operations, about 100 bytes of memory traffic per parameter where the
step needs only 28 (read w, g, m, v; write w, m, v). Three changes, none of them to the maths:

1. Blocks. The pieces run on slices of ``BLOCK_SIZE`` elements (128K floats, 512 KB), so the
   dozen operations work on data in the core's own cache and main memory is touched about once.
2. Threads. A NumPy operation runs on one core, but it releases the GIL while it computes, so the
   work is shared between a few threads (``set_num_threads``; the caller's thread works too).
   A model of many tensors gives each thread whole tensors (``for_each_tensor``); one large tensor is
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

from typing import Any

from lamb_edu import backend
from lamb_edu.backend import xp
from lamb_edu.optim.functional import TRUST_KEYS
from lamb_edu.optim.fused import cuda
from lamb_edu.optim.fused.blocked import (
    LambNumbers,
    adam_step,
    lamb_first_pass,
    lamb_numbers,
    lamb_second_pass,
    lamb_step,
)
from lamb_edu.optim.fused.threads import BLOCK_SIZE, for_each_tensor, num_threads, set_num_threads
from lamb_edu.optim.optimizer import Visit

__all__ = ["adam", "lamb", "supports", "adam_step", "lamb_step", "lamb_numbers", "lamb_first_pass",
           "lamb_second_pass", "LambNumbers", "BLOCK_SIZE", "set_num_threads", "num_threads",
           "for_each_tensor"]

def supports(*arrays: Any) -> bool:
    """True when the fused form applies: contiguous float32/float64 arrays of one dtype and shape.

    NumPy arrays take the blocked path; CuPy arrays (on the CuPy backend) the CUDA kernels.
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


def adam(visits: list[Visit], decoupled: bool = False) -> list[Visit]:
    """Adam's (AdamW's with ``decoupled``) step on every (p, grad, group, state) it can take; returns the rest."""
    def step(p: Any, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        (beta1, beta2) = group["betas"]
        state["step"] += 1
        adam_step(p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                  weight_decay=group["weight_decay"], decoupled=decoupled, step=state["step"],
                  bias_correction=group["bias_correction"])

    taken, rest = _split(visits)
    on_host = [visit for visit in taken if isinstance(visit[0].data, backend.np.ndarray)]
    for_each_tensor(lambda visit: step(*visit), on_host, [visit[0].data for visit in on_host])
    for visit in taken:
        if not isinstance(visit[0].data, backend.np.ndarray):  # the GPU: kernels queued in turn, no wait
            step(*visit)
    return rest


def lamb(visits: list[Visit], grad_scale: float) -> list[Visit]:
    """LAMB's step on every (p, grad, group, state) it can take, recording its ``TrustRatio``; returns the rest.

    On the GPU every tensor's kernels are queued in turn and the norms come back in one copy at the end.
    """
    taken, rest = _split(visits)
    on_host = [visit for visit in taken if isinstance(visit[0].data, backend.np.ndarray)]
    on_device = [visit for visit in taken if not isinstance(visit[0].data, backend.np.ndarray)]
    for_each_tensor(lambda visit: _record(visit[3], _lamb(*visit, grad_scale)), on_host,
                    [visit[0].data for visit in on_host])
    if on_device:
        records = xp.empty((len(on_device), len(cuda.RECORD_FIELDS)), dtype=backend.np.float64)
        for i, visit in enumerate(on_device):
            _lamb(*visit, grad_scale, record=records[i])
        for visit, row in zip(on_device, backend.to_numpy(records)):  # the step's one wait for the GPU
            _record(visit[3], (float(x) for x in row[:3]))
    return rest


def _split(visits: list[Visit]) -> tuple[list[Visit], list[Visit]]:
    """The visits the fused form takes (``supports`` their arrays, no AMSGrad), and the rest."""
    taken, rest = [], []
    for visit in visits:
        p, grad, group, state = visit
        fits = not group.get("amsgrad", False) and supports(p.data, grad, state["m"], state["v"])
        (taken if fits else rest).append(visit)
    return taken, rest


def _lamb(p: Any, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float,
          record: Any = None) -> tuple[float, float, float] | None:
    (beta1, beta2) = group["betas"]
    state["step"] += 1
    return lamb_step(
        p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
        weight_decay=group["weight_decay"], step=state["step"], bias_correction=group["bias_correction"],
        grad_scale=grad_scale, grad_averaging=group["grad_averaging"], clamp_value=group["clamp_value"],
        trust_clip=group["trust_clip"], use_trust_ratio=group["use_trust_ratio"], record=record)


def _record(state: dict[str, Any], measured: Any) -> None:
    """Store LAMB's (‖w‖, ‖u‖, ratio) under ``TRUST_KEYS`` (‖u‖ is its ``ratio_denominator``)."""
    state.update(zip(TRUST_KEYS, measured))
