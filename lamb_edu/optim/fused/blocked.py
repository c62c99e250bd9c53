"""The blocked forms of Adam, AdamW and LAMB: the pieces of ``optim.functional`` on cache-sized blocks.

``adam_step`` and ``lamb_step`` take one tensor's arrays and numbers (not an optimizer): NumPy
arrays are cut into blocks that ``threads.parallel`` shares between threads; device (CuPy) arrays go
to the CUDA kernels of ``fused.cuda``, fed the same numbers (``moment_weights``,
``adam_weight_decay``, the bias corrections folded into ``eps_hat`` and one scale, as explained in
``optim.fused``).
"""

from __future__ import annotations

import math
from typing import Any

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

__all__ = ["adam_step", "lamb_step", "WORKSPACE_LIMIT"]

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
    bias_correction1, bias_correction2 = bias_corrections(step, beta1, beta2, bias_correction)
    eps_hat = eps * math.sqrt(bias_correction2)
    direction_scale = math.sqrt(bias_correction2) / bias_correction1
    moments = dict(beta1=beta1, beta2=beta2, grad_scale=grad_scale, grad_averaging=grad_averaging)
    if not isinstance(param, backend.np.ndarray):
        m_weight, v_weight = moment_weights(**moments)
        return cuda.lamb_step(param, grad, m, v, dict(
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
    update = workspace(w.size, w.dtype) if w.size <= WORKSPACE_LIMIT else None

    def first_pass(start: int, stop: int, block: int) -> list[tuple[float, float]]:
        t, own = scratch(w.dtype, 0), scratch(w.dtype, 2)
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
    sums = [pair for part in parallel(first_pass, w.size) for pair in part]
    return [sum(pair[0] for pair in sums), sum(pair[1] for pair in sums)], update


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
