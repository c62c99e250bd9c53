"""The scale-invariance check of notebook 08: does a rule keep its step when the loss or a layer is scaled by 10?

The paper's LAMB has two properties (see ``optim.variants``): multiplying the loss by c leaves the
step the same, and multiplying a layer's weights by c (its gradient then is g/c, as for a layer before
a normalisation) makes the step c times larger. ``scale_check`` measures both for any optimizer class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor

np = backend.np

__all__ = ["ScaleCheck", "scale_check"]


@dataclass
class ScaleCheck:
    """‖step‖ with the loss × c and with the weights × c, over ‖step‖, and whether each is the paper's (1 and c)."""

    factor: float
    loss_scaled_ratio: float
    weight_scaled_ratio: float
    keeps_loss_scale: bool
    keeps_weight_scale: bool


def _steps(optimizer_class: Any, settings: dict[str, Any], weight: Any, grads: list[Any]) -> Any:
    p = Tensor(weight.copy(), requires_grad=True)
    optimizer = optimizer_class([p], **settings)
    for grad in grads:
        p.grad = grad.copy()
        optimizer.step()
    return backend.to_numpy(p.data) - weight


def scale_check(optimizer_class: Any, settings: dict[str, Any], factor: float = 10.0, size: int = 50,
                steps: int = 3, seed: int = 0, rtol: float = 1e-4) -> ScaleCheck:
    """Step a float64 layer of ``size`` weights (norm about 0.6) ``steps`` times three ways and compare.

    Plain: weights w, gradients g. Loss × ``factor``: gradients factor·g (the step should not change).
    Weights × ``factor``: weights factor·w, gradients g/factor (the step should be ``factor`` times larger).
    ValueError when ``factor`` is not a finite number > 0 other than 1, or when a step is zero or not
    finite (lr 0, say): the ratios would then be 0/0 and no verdict could be read from them.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < math.inf or factor == 1:
        raise ValueError(f"invalid factor: {factor!r} (must be a finite number > 0 other than 1)")
    rng = backend.generator(seed)
    weight = rng.uniform(-0.15, 0.15, size)
    grads = [rng.standard_normal(size) for _ in range(steps)]
    plain = _steps(optimizer_class, settings, weight, grads)
    loss_scaled = _steps(optimizer_class, settings, weight, [factor * g for g in grads])
    weight_scaled = _steps(optimizer_class, settings, factor * weight, [g / factor for g in grads])
    for name, moved in (("plain", plain), ("loss-scaled", loss_scaled), ("weight-scaled", weight_scaled)):
        size = float(np.linalg.norm(moved))
        if not 0 < size < math.inf:
            raise ValueError(f"scale_check: the {name} step of {getattr(optimizer_class, '__name__', optimizer_class)} "
                             f"with {settings} has norm {size}: no ratio to compare (is lr 0?)")
    size_of = np.linalg.norm(plain)
    return ScaleCheck(
        factor=factor,
        loss_scaled_ratio=float(np.linalg.norm(loss_scaled) / size_of),
        weight_scaled_ratio=float(np.linalg.norm(weight_scaled) / size_of),
        keeps_loss_scale=bool(np.allclose(loss_scaled, plain, rtol=rtol, atol=0)),
        keeps_weight_scale=bool(np.allclose(weight_scaled, factor * plain, rtol=rtol, atol=0)),
    )
