"""The pieces Adam, AdamW, LARS and LAMB share, each written once.

- ``update_moments``: the running averages of the gradient and of its square (Adam's m and v).
- ``adam_direction``: m̂ / (√v̂ + eps), the bias-corrected Adam direction.
- ``trust_ratio``: LARS's and LAMB's layer-wise ratio ‖w‖ / ‖update‖, with its rules for zero norms,
  the clamp of ‖w‖ and the optional cap at 1.
- ``norm``: the Euclidean norm of a whole tensor as a Python float.

Arrays are updated in place with ``out=`` so no new array is made per step; scalars are Python
floats, so float32 arrays stay float32.
"""

from __future__ import annotations

import math
from typing import Any

from lamb_edu.backend import xp

__all__ = ["norm", "update_moments", "adam_direction", "trust_ratio"]


def norm(array: Any) -> float:
    """‖array‖₂ over all its entries, as a Python float (a dot product: no temporary array)."""
    flat = array.reshape(-1)
    return math.sqrt(float(xp.dot(flat, flat)))


def update_moments(
    m: Any, v: Any, grad: Any, beta1: float, beta2: float, scratch: Any,
    grad_scale: float = 1.0, grad_averaging: bool = True,
) -> None:
    """In place: m ← β1·m + (1−β1)·g and v ← β2·v + (1−β2)·g², with g = grad_scale·grad.

    ``grad_averaging=False`` gives m ← β1·m + g (the first moment as a plain momentum sum).
    ``scratch`` is a temporary array of the gradient's shape.
    """
    xp.multiply(grad, grad, out=scratch)
    xp.multiply(scratch, (1.0 - beta2) * grad_scale * grad_scale, out=scratch)
    xp.multiply(v, beta2, out=v)
    xp.add(v, scratch, out=v)
    xp.multiply(grad, ((1.0 - beta1) if grad_averaging else 1.0) * grad_scale, out=scratch)
    xp.multiply(m, beta1, out=m)
    xp.add(m, scratch, out=m)


def adam_direction(
    m: Any, v: Any, step: int, beta1: float, beta2: float, eps: float, bias_correction: bool, out: Any,
) -> Any:
    """Write m̂ / (√v̂ + eps) into ``out`` and return it.

    With bias correction m̂ = m / (1 − β1ᵗ) and v̂ = v / (1 − β2ᵗ): the moments start at zero, so
    early averages are too small by exactly those factors. Without it m̂ = m and v̂ = v. As in
    PyTorch, √v̂ is computed as √v / √(1 − β2ᵗ).
    """
    bias_correction1 = 1.0 - beta1**step if bias_correction else 1.0
    bias_correction2 = 1.0 - beta2**step if bias_correction else 1.0
    xp.sqrt(v, out=out)
    xp.divide(out, math.sqrt(bias_correction2), out=out)
    xp.add(out, eps, out=out)
    xp.divide(m, out, out=out)
    xp.divide(out, bias_correction1, out=out)
    return out


def trust_ratio(
    weight_norm: float, update_norm: float, coefficient: float = 1.0, eps: float = 0.0,
    clamp_value: float | None = None, trust_clip: bool = False,
) -> float:
    """coefficient·φ(‖w‖) / (‖update‖ + eps), the layer-wise learning-rate multiplier.

    φ clips ‖w‖ to [0, clamp_value] (no clip when ``clamp_value`` is None). When either norm is 0
    the ratio is 1: a zero weight (say, a freshly zeroed bias) or a zero update gives no scale to
    compare against. With ``trust_clip`` the ratio is capped at 1.
    """
    if weight_norm == 0.0 or update_norm == 0.0:
        return 1.0
    clipped_weight_norm = min(weight_norm, clamp_value) if clamp_value is not None else weight_norm
    ratio = coefficient * clipped_weight_norm / (update_norm + eps)
    return min(ratio, 1.0) if trust_clip else ratio
