"""The blocked forms of Adam, AdamW and LAMB: the pieces of ``optim.functional`` on cache-sized blocks.

``adam_step`` and ``lamb_step`` take one tensor's arrays and numbers (not an optimizer): NumPy
arrays are cut into blocks that ``threads.parallel`` shares between threads; device (CuPy) arrays go
to the CUDA kernels of ``fused.cuda``, fed the same numbers (``moment_weights``,
``adam_weight_decay``, the bias corrections folded into ``eps_hat`` and one scale, as explained in
``optim.fused``).
"""

from __future__ import annotations

import bisect
import math
from typing import Any, NamedTuple

from lamb_edu import backend
from lamb_edu.optim.functional import (
    adam_weight_decay,
    add_decayed_weights,
    bias_corrections,
    moment_weights,
    trust_ratio,
    update_moments,
)
from lamb_edu.optim.fused import cuda
from lamb_edu.optim.fused.threads import parallel, scratch, workspace

__all__ = ["adam_step", "lamb_step", "lamb_numbers", "lamb_first_pass", "lamb_second_pass", "LambNumbers",
           "WORKSPACE_LIMIT"]

WORKSPACE_LIMIT = 1 << 22  # LAMB keeps u for tensors up to this size (16 MB of float32, one per thread)


def _flat(array: Any) -> Any:
    return array.reshape(-1)


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
    l2, decay_factor = adam_weight_decay(lr, weight_decay, decoupled)
    if not isinstance(param, backend.np.ndarray):
        m_weight, v_weight = moment_weights(beta1, beta2)
        cuda.adam_step(param, grad, m, v, dict(
            beta1=beta1, beta2=beta2, m_weight=m_weight, v_weight=v_weight, eps_hat=eps_hat, step_size=step_size,
            decay_factor=decay_factor, l2=l2))
        return
    w, g, m, v = _flat(param), _flat(grad), _flat(m), _flat(v)
    np = backend.np

    def update_blocks(start: int, stop: int, block: int) -> None:
        t, decayed = scratch(w.dtype, 0), scratch(w.dtype, 1)
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

    parallel(update_blocks, w.size)


def _scaled_direction(m: Any, v: Any, eps_hat: float, out: Any) -> Any:
    """m/(√v + eps_hat): the Adam direction m̂/(√v̂ + eps) divided by √bc2/bc1 (``optim.fused``, point 3)."""
    np = backend.np
    np.sqrt(v, out=out)
    np.add(out, eps_hat, out=out)
    return np.divide(m, out, out=out)


class LambNumbers(NamedTuple):
    """The scalars of one LAMB step that the blocked passes use (``lamb_numbers``)."""

    moments: dict[str, Any]  # update_moments' keywords: beta1, beta2, grad_scale, grad_averaging
    eps_hat: float  # eps·√bc2
    weight_decay: float  # weight_decay / direction_scale: the blocks hold u / direction_scale
    direction_scale: float  # √bc2 / bc1


def lamb_numbers(*, beta1: float, beta2: float, eps: float, weight_decay: float, step: int,
                 bias_correction: bool = True, grad_scale: float = 1.0, grad_averaging: bool = True) -> LambNumbers:
    """The scalars of LAMB's step ``step`` (t after it) for ``lamb_first_pass`` and ``lamb_second_pass``."""
    bias_correction1, bias_correction2 = bias_corrections(step, beta1, beta2, bias_correction)
    direction_scale = math.sqrt(bias_correction2) / bias_correction1
    moments = dict(beta1=beta1, beta2=beta2, grad_scale=grad_scale, grad_averaging=grad_averaging)
    return LambNumbers(moments, eps * math.sqrt(bias_correction2), weight_decay / direction_scale, direction_scale)


def lamb_step(
    param: Any, grad: Any, m: Any, v: Any, *, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, step: int, bias_correction: bool = True, grad_scale: float = 1.0,
    grad_averaging: bool = True, clamp_value: float | None = 10.0, trust_clip: bool = False,
    use_trust_ratio: bool = True, record: Any = None,
) -> tuple[float, float, float] | None:
    """One LAMB step in place on param, m and v; returns (weight_norm, ratio_denominator = ‖u‖, trust_ratio).

    On the GPU a float64 device array ``record`` of 4 may be given instead: the norms, the ratio
    and the step are then left there (``cuda.RECORD_FIELDS``), nothing waits for the GPU,
    and None is returned.

    The equations of ``lamb.py``: ``update_moments`` with g = grad_scale·grad; u ← m̂/(√v̂ + eps) +
    weight_decay·w; the ratio from ‖w‖ and ‖u‖ (``functional.trust_ratio``); w ← w − lr·trust_ratio·u
    (ratio 1 if not ``use_trust_ratio``).
    """
    numbers = lamb_numbers(beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, step=step,
                           bias_correction=bias_correction, grad_scale=grad_scale, grad_averaging=grad_averaging)
    if not isinstance(param, backend.np.ndarray):
        m_weight, v_weight = moment_weights(**numbers.moments)
        return cuda.lamb_step(param, grad, m, v, dict(
            beta1=beta1, beta2=beta2, m_weight=m_weight, v_weight=v_weight, eps_hat=numbers.eps_hat,
            direction_scale=numbers.direction_scale, weight_decay=weight_decay), dict(
            lr=lr, clamp_value=clamp_value, trust_clip=trust_clip, use_trust_ratio=use_trust_ratio), record)
    [(weight_squares, kept_squares)], update = lamb_first_pass(param, grad, m, v, numbers)
    weight_norm, update_norm = math.sqrt(weight_squares), numbers.direction_scale * math.sqrt(kept_squares)
    ratio = trust_ratio(weight_norm, update_norm, clamp_value=clamp_value, trust_clip=trust_clip)
    lamb_second_pass(param, m, v, update, numbers, lr * (ratio if use_trust_ratio else 1.0))
    return weight_norm, update_norm, ratio


def lamb_first_pass(param: Any, grad: Any, m: Any, v: Any, numbers: LambNumbers, out: Any = None,
                    pieces: list[tuple[int, int]] | None = None) -> tuple[list[tuple[float, float]], Any]:
    """LAMB's first pass over a host tensor, or any run of elements that share ``numbers`` (several
    layers' pieces of a ZeRO shard, one after another): update m and v, compute u.

    What is kept is u / direction_scale (one pass fewer; the second pass puts the scale back).
    Returns, for each ``(start, stop)`` of ``pieces`` (offsets into what was given; default: all of
    it), (Σw², Σ(u / direction_scale)²), so a layer's ‖u‖ = direction_scale·√(the second), each added
    block by block while the block is in cache; and where u is kept for ``lamb_second_pass``: ``out``
    (an array of param's size) when given, else this thread's workspace, or None for a tensor too
    large to keep (the second pass then recomputes it from the new m and v).
    """
    update = (_flat(out) if out is not None
              else workspace(param.size, param.dtype) if param.size <= WORKSPACE_LIMIT else None)
    blocks = dict(eps_hat=numbers.eps_hat, weight_decay=numbers.weight_decay)
    sums = _lamb_first_pass(_flat(param), _flat(grad), _flat(m), _flat(v), numbers.moments, blocks, update,
                            pieces or [(0, param.size)])
    return sums, update


def lamb_second_pass(param: Any, m: Any, v: Any, update: Any, numbers: LambNumbers, step_size: float) -> None:
    """w ← w − step_size·u (step_size = lr·trust_ratio), u as ``lamb_first_pass`` kept it (None: recomputed)."""
    blocks = dict(eps_hat=numbers.eps_hat, weight_decay=numbers.weight_decay)
    _lamb_second_pass(_flat(param), _flat(m), _flat(v), update, step_size * numbers.direction_scale, blocks)


def _direction_block(w: Any, m: Any, v: Any, u: Any, t: Any, eps_hat: float, weight_decay: float) -> None:
    """u ← m/(√v + eps_hat) + weight_decay·w on one block (t is scratch).

    ``lamb_step`` passes weight_decay/direction_scale, so u is LAMB's update/direction_scale.
    """
    _scaled_direction(m, v, eps_hat, out=u)
    add_decayed_weights(u, w, weight_decay, out=u, scratch=t)


def _lamb_first_pass(w: Any, g: Any, m: Any, v: Any, moments: dict[str, Any], blocks: dict[str, float],
                     update: Any, pieces: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Update m and v, compute u (into ``update`` unless it is None), return (‖w‖², ‖u‖²) of each piece."""
    np = backend.np
    starts = [start for start, _ in pieces]

    def first_pass(start: int, stop: int, block: int) -> list[tuple[int, float, float]]:
        t, own = scratch(w.dtype, 0), scratch(w.dtype, 2)
        sums = []  # (piece, Σw², Σu²) of each block's share of each piece, in order
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            wb, mb, vb, tb = w[begin:end], m[begin:end], v[begin:end], t[: end - begin]
            ub = update[begin:end] if update is not None else own[: end - begin]
            update_moments(mb, vb, g[begin:end], scratch=tb, **moments)
            _direction_block(wb, mb, vb, ub, tb, **blocks)
            for number in range(max(0, bisect.bisect_right(starts, begin) - 1), len(pieces)):
                low, high = max(pieces[number][0], begin) - begin, min(pieces[number][1], end) - begin
                if low >= end - begin:
                    break
                if low < high:
                    wp, up = wb[low:high], ub[low:high]
                    sums.append((number, float(np.dot(wp, wp)), float(np.dot(up, up))))
        return sums

    # added block by block in order, so the norms do not depend on the thread count
    totals = [[0.0, 0.0] for _ in pieces]
    for part in parallel(first_pass, w.size):
        for number, weight, direction in part:
            totals[number][0] += weight
            totals[number][1] += direction
    return [(weight, direction) for weight, direction in totals]


def _lamb_second_pass(w: Any, m: Any, v: Any, update: Any, scale: float, blocks: dict[str, float]) -> None:
    """w ← w − scale·u, with u from the workspace or recomputed from the new m and v."""
    np = backend.np

    def second_pass(start: int, stop: int, block: int) -> None:
        if update is not None:  # u is stored: two operations over the whole range, no blocks needed
            np.multiply(update[start:stop], scale, out=update[start:stop])
            np.subtract(w[start:stop], update[start:stop], out=w[start:stop])
            return
        t, own = scratch(w.dtype, 0), scratch(w.dtype, 2)
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            ub = own[: end - begin]
            _direction_block(w[begin:end], m[begin:end], v[begin:end], ub, t[: end - begin], **blocks)
            np.multiply(ub, scale, out=ub)
            np.subtract(w[begin:end], ub, out=w[begin:end])

    parallel(second_pass, w.size)
