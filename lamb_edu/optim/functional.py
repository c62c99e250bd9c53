"""The pieces every optimizer here is made of, each written once, with the papers' names.

Each piece is a short pure function on arrays (optax's vocabulary): it reads its inputs and writes
only the arrays it is given (``out=``, the moments it updates), so no array is made per step.
Scalars are Python floats, so float32 arrays stay float32.

- ``moment_weights`` and ``update_moments``: Adam's running averages m and v of g and g², made of
  ``update_first_moment`` (m ← β·m + weight·g) and ``update_second_moment`` (v ← β·v + weight·g²),
  which RMSprop uses too.
- ``scale_by_adam``: the moments, then the bias-corrected direction m̂ / (√v̂ + eps).
- ``add_decayed_weights``: u + weight_decay·w (decoupled decay in LAMB and LARS, the L2 term of
  SGD and Adam when added to the gradient); ``adam_weight_decay``: Adam's L2 term or AdamW's
  decoupled factor, the one branch between them.
- ``momentum``: b ← momentum·b + (1 − dampening)·u, the heavy-ball buffer, and ``momentum_direction``:
  the step along b, or along u + momentum·b with Nesterov's look-ahead.
- ``trust_ratio``: the layer-wise rule coefficient·φ(‖w‖) / (‖d‖ + weight_decay·‖w‖ + eps), with its
  zero-norm rule, clamp and clip, on two norms computed anywhere (one array, or partial sums), and
  ``measure_trust_ratio``: the same, returned as a ``TrustRatio`` (‖w‖, ``ratio_denominator``, ratio),
  the three numbers LAMB and LARS record (``TRUST_KEYS``).
- ``scale`` and ``apply_updates``: u ← factor·u (``scale(u, -lr)``) and w ← w + u.
- ``norm`` and ``global_norm_scale``: ‖x‖₂, and the factor of a global-norm clip.

An optimizer's update is these pieces in a row; LAMB, for instance, is::

    u = scale_by_adam(grad, m, v, ..., out=u)                  # u ← m̂ / (√v̂ + eps)
    add_decayed_weights(u, w, weight_decay, out=u)             # u ← u + λ·w
    ratio = trust_ratio(norm(w), norm(u), clamp_value=10.0)    # φ(‖w‖)/‖u‖
    apply_updates(w, scale(u, -lr * ratio, out=u))             # w ← w − lr·ratio·u

(``LAMB.direction``, ``LAMB.trust_ratio`` and ``LAMB.apply`` are these lines with a group's settings.)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, NamedTuple

from lamb_edu.backend import np, xp

__all__ = [
    "squared_norm", "norm", "global_norm_scale", "moment_weights", "update_first_moment", "update_second_moment",
    "update_moments", "bias_corrections", "scale_by_adam", "add_decayed_weights", "adam_weight_decay", "momentum",
    "momentum_direction", "trust_ratio", "TrustRatio", "TRUST_KEYS", "RENAMED_TRUST_KEYS", "measure_trust_ratio",
    "scale", "apply_updates",
]


def squared_norm(array: Any) -> float:
    """‖array‖₂² over all its entries, as a Python float (a dot product: no temporary array).

    A float32 sum of squares overflows once ‖array‖ passes about 1.8e19, though the norm itself is a
    fine number (LARS's ‖g‖ of a huge gradient, whose step is a fraction of ‖w‖ whatever ‖g‖ is): then,
    and only then, it is added up again in float64.
    """
    flat = array.reshape(-1)
    with np.errstate(over="ignore"):  # the overflow is handled below (NumPy's warning; CuPy gives none)
        total = float(xp.dot(flat, flat))
    if math.isinf(total) and flat.dtype != xp.float64:
        wide = flat.astype(xp.float64)
        total = float(xp.dot(wide, wide))
    return total


def norm(array: Any) -> float:
    """‖array‖₂ over all its entries, as a Python float (see ``squared_norm``)."""
    return math.sqrt(squared_norm(array))


def global_norm_scale(grads: Iterable[Any], max_norm: float | None) -> float:
    """The factor min(1, max_norm / ‖(g₁, g₂, …)‖) that clips the gradients' global norm to ``max_norm``.

    1.0 when ``max_norm`` is None. The optimizer multiplies g by it inside the update
    (``grad_scale``), so the caller's gradient arrays are never changed.
    """
    if max_norm is None:
        return 1.0
    global_norm = math.sqrt(sum(norm(grad) ** 2 for grad in grads))
    return max_norm / global_norm if global_norm > max_norm else 1.0


def moment_weights(
    beta1: float, beta2: float, grad_scale: float = 1.0, grad_averaging: bool = True,
) -> tuple[float, float]:
    """The weights of g in m and of g² in v: ((1 − β1)·s, (1 − β2)·s²) for g = s·grad.

    ``grad_averaging=False`` gives m the weight s (m ← β1·m + g, a plain momentum sum). The fast
    path and the GPU kernels take these same two numbers, so the rule is decided here only.
    """
    return ((1.0 - beta1) if grad_averaging else 1.0) * grad_scale, (1.0 - beta2) * grad_scale * grad_scale


def update_first_moment(m: Any, grad: Any, beta: float, weight: float, *, scratch: Any) -> Any:
    """In place: m ← β·m + weight·g (weight = 1 − β for a running mean); returns m. ``scratch`` is g's shape."""
    xp.multiply(m, beta, out=m)
    if weight == 1.0:  # g·1 is g: skip a pass
        return xp.add(m, grad, out=m)
    return xp.add(m, xp.multiply(grad, weight, out=scratch), out=m)


def update_second_moment(v: Any, grad: Any, beta: float, weight: float, *, scratch: Any) -> Any:
    """In place: v ← β·v + weight·g² (weight = 1 − β for a running mean of g²); returns v."""
    xp.multiply(grad, grad, out=scratch)
    xp.multiply(scratch, weight, out=scratch)
    xp.multiply(v, beta, out=v)
    return xp.add(v, scratch, out=v)


def update_moments(
    m: Any, v: Any, grad: Any, beta1: float, beta2: float, *, scratch: Any,
    grad_scale: float = 1.0, grad_averaging: bool = True,
) -> None:
    """In place: m ← β1·m + (1 − β1)·g and v ← β2·v + (1 − β2)·g², with g = grad_scale·grad.

    ``scratch`` is a temporary array of the gradient's shape (a block of it, in the fused form).
    """
    m_weight, v_weight = moment_weights(beta1, beta2, grad_scale, grad_averaging)
    update_second_moment(v, grad, beta2, v_weight, scratch=scratch)
    update_first_moment(m, grad, beta1, m_weight, scratch=scratch)


def bias_corrections(step: int, beta1: float, beta2: float, bias_correction: bool = True) -> tuple[float, float]:
    """(1 − β1ᵗ, 1 − β2ᵗ), or (1, 1) without bias correction: m̂ = m / the first, v̂ = v / the second."""
    if not bias_correction:
        return 1.0, 1.0
    return 1.0 - beta1**step, 1.0 - beta2**step


def scale_by_adam(
    grad: Any, m: Any, v: Any, *, step: int, beta1: float, beta2: float, eps: float, out: Any,
    bias_correction: bool = True, grad_scale: float = 1.0, grad_averaging: bool = True, v_max: Any = None,
) -> Any:
    """Update m and v with g, then write u = m̂ / (√v̂ + eps) into ``out`` and return it.

    The moments start at zero, so at step t (1 at the first) their averages are too small by
    1 − β1ᵗ and 1 − β2ᵗ: m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ) (Kingma & Ba 2015, Algorithm 1).
    As in PyTorch √v̂ is computed as √v / √(1 − β2ᵗ). With ``v_max`` (AMSGrad) v̂ uses the running
    maximum of v, kept in ``v_max``.
    """
    update_moments(m, v, grad, beta1, beta2, scratch=out, grad_scale=grad_scale, grad_averaging=grad_averaging)
    if v_max is not None:
        v = xp.maximum(v_max, v, out=v_max)
    bias_correction1, bias_correction2 = bias_corrections(step, beta1, beta2, bias_correction)
    xp.sqrt(v, out=out)
    xp.divide(out, math.sqrt(bias_correction2), out=out)
    xp.add(out, eps, out=out)
    xp.divide(m, out, out=out)
    xp.divide(out, bias_correction1, out=out)
    return out


def add_decayed_weights(update: Any, weight: Any, weight_decay: float, *, out: Any, scratch: Any = None) -> Any:
    """update + weight_decay·w, written into ``out`` and returned (``update`` itself when weight_decay is 0).

    ``out`` may be ``update`` (then ``scratch`` holds weight_decay·w) or another array; the
    caller's gradient is never written unless it is passed as ``out``.
    """
    if weight_decay == 0:
        return update
    decayed = scratch if out is update else out
    xp.multiply(weight, weight_decay, out=decayed)
    return xp.add(update, decayed, out=out)


def adam_weight_decay(lr: float, weight_decay: float, decoupled: bool) -> tuple[float, float]:
    """(l2, decay_factor): Adam adds l2·w to g (l2 = λ); AdamW multiplies w by decay_factor = 1 − lr·λ.

    The other number is neutral (0 and 1), so every form of Adam (readable, blocked, CUDA kernel)
    applies both, g ← g + l2·w and w ← decay_factor·w, and the choice is made here only.
    """
    if decoupled:
        return 0.0, 1.0 - lr * weight_decay
    return weight_decay, 1.0


def momentum(buffer: Any, update: Any, momentum: float, dampening: float = 0.0, *, scratch: Any = None) -> Any:
    """In place: b ← momentum·b + (1 − dampening)·u; returns b (``scratch`` is needed when dampening ≠ 0)."""
    return update_first_moment(buffer, update, momentum, 1.0 - dampening, scratch=scratch)


def momentum_direction(buffer: Any, update: Any, momentum: float, nesterov: bool, *, out: Any) -> Any:
    """The direction a momentum method steps along once b has taken u: b, or u + momentum·b (Nesterov).

    Nesterov's look-ahead is written into ``out`` (not ``update``, not ``buffer``); without it ``buffer``
    itself is returned.
    """
    if not nesterov:
        return buffer
    return xp.add(update, xp.multiply(buffer, momentum, out=out), out=out)


def trust_ratio(
    weight_norm: float, direction_norm: float, *, coefficient: float = 1.0, eps: float = 0.0,
    clamp_value: float | None = None, trust_clip: bool = False, weight_decay: float = 0.0,
) -> float:
    """coefficient·φ(‖w‖) / (‖d‖ + weight_decay·‖w‖ + eps): the layer-wise learning-rate multiplier.

    LAMB passes ‖d‖ = ‖u‖ of its whole update (decay included, ``weight_decay=0``); LARS passes
    ‖d‖ = ‖g‖ and its weight decay, so the denominator is its bound ‖g‖ + λ‖w‖ of ‖g + λw‖. φ clips
    ‖w‖ to [0, clamp_value] (no clip when None). When ‖w‖ or ‖d‖ is 0 the ratio is 1: a zero weight
    (a freshly zeroed bias) or a zero direction gives no scale to compare against. With ``trust_clip``
    the ratio is capped at 1. The norms may come from anywhere, e.g. partial sums over several processes.
    """
    if weight_norm == 0.0 or direction_norm == 0.0:
        return 1.0
    clipped_weight_norm = min(weight_norm, clamp_value) if clamp_value is not None else weight_norm
    ratio = coefficient * clipped_weight_norm / (direction_norm + weight_decay * weight_norm + eps)
    return min(ratio, 1.0) if trust_clip else ratio


class TrustRatio(NamedTuple):
    """What an optimizer with a trust ratio records for a layer at every step (``TRUST_KEYS``).

    ``weight_norm`` is ‖w‖ before the step (not clipped); ``ratio_denominator`` is the norm the ratio
    divides φ(‖w‖) by, eps left out: ‖u‖ in LAMB, ‖g‖ + λ‖w‖ in LARS, whatever a variant divides by;
    ``trust_ratio`` is the ratio computed (whether or not the step used it).
    """

    weight_norm: float
    ratio_denominator: float
    trust_ratio: float


TRUST_KEYS = TrustRatio._fields  # ("weight_norm", "ratio_denominator", "trust_ratio")
# the names older versions recorded, for reading old checkpoints and run files: old -> new
RENAMED_TRUST_KEYS = {"update_norm": "ratio_denominator"}


def measure_trust_ratio(weight_norm: float, direction_norm: float, **settings: Any) -> TrustRatio:
    """``trust_ratio(weight_norm, direction_norm, **settings)`` with the two norms, as a ``TrustRatio``.

    ``ratio_denominator`` is direction_norm + weight_decay·weight_norm (``settings["weight_decay"]``, 0 if absent).
    """
    ratio = trust_ratio(weight_norm, direction_norm, **settings)
    return TrustRatio(weight_norm, direction_norm + settings.get("weight_decay", 0.0) * weight_norm, ratio)


def scale(update: Any, factor: float, *, out: Any) -> Any:
    """factor·u into ``out`` (``scale(u, -lr, out=u)`` turns a direction into a step)."""
    return xp.multiply(update, factor, out=out)


def apply_updates(weight: Any, update: Any) -> Any:
    """In place: w ← w + u."""
    return xp.add(weight, update, out=weight)
