"""One LAMB step by hand: every quantity of Algorithm 2 on numbers small enough for a calculator.

``lamb_step_by_hand`` computes, for each layer, m, v, m̂, v̂, the update u, ‖w‖, ‖u‖, the trust ratio
r and the new weights, with nothing but the formulas of You et al. (2019), Algorithm 2, in float64;
``algorithm_lines`` prints them line by line beside the algorithm; ``lamb_step_with_optimizer``
takes the same step with ``optim.LAMB`` so the two can be compared (notebook 03 and the tests do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from lamb_edu import backend, optim
from lamb_edu.autograd import Tensor
from lamb_edu.optim.checks import check_betas, check_non_negative, check_optional_positive

np = backend.np  # a handful of host numbers

__all__ = ["TOY_WEIGHTS", "TOY_GRADIENTS", "TOY_SETTINGS", "LayerStep", "lamb_step_by_hand", "algorithm_lines",
           "lamb_step_with_optimizer"]

# a 2-layer toy: layer 1 has ‖w‖ = 1; layer 2 has ‖w‖ = 13, above the clamp 10
TOY_WEIGHTS = ([0.6, -0.8], [5.0, 12.0])
TOY_GRADIENTS = ([0.3, 0.4], [-0.5, 0.2])
TOY_SETTINGS = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.1, clamp_value=10.0)


@dataclass
class LayerStep:
    """Every quantity of one layer's LAMB step, as float64 host arrays and floats."""

    w: Any
    g: Any
    m: Any
    v: Any
    m_hat: Any
    v_hat: Any
    adam: Any  # m̂ / (√v̂ + ε)
    u: Any  # adam + λw
    weight_norm: float
    clipped_weight_norm: float  # φ(‖w‖) = min(‖w‖, clamp)
    update_norm: float
    trust_ratio: float
    new_w: Any


def lamb_step_by_hand(
    weights: Sequence[Any], grads: Sequence[Any], lr: float, betas: tuple[float, float], eps: float,
    weight_decay: float, clamp_value: float | None, step: int = 1, m: Sequence[Any] | None = None,
    v: Sequence[Any] | None = None,
) -> list[LayerStep]:
    """Step ``step`` of LAMB (Algorithm 2, bias-corrected) for each layer, from moments ``m``, ``v`` (zero by default).

    The settings are checked as ``optim.LAMB`` checks them (a clamp is > 0, or None for none); a bad
    one, or layers that do not pair up, raise ValueError naming it.
    """
    _check_settings(weights, grads, lr, betas, eps, weight_decay, clamp_value, step, m, v)
    beta1, beta2 = betas
    layers = []
    for index, (w, g) in enumerate(zip(weights, grads)):
        w, g = np.asarray(w, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if w.shape != g.shape:
            raise ValueError(f"layer {index + 1}: the gradient has shape {g.shape}, the weights {w.shape}")
        m_old = np.zeros_like(w) if m is None else np.asarray(m[index], dtype=np.float64)
        v_old = np.zeros_like(w) if v is None else np.asarray(v[index], dtype=np.float64)
        m_new = beta1 * m_old + (1 - beta1) * g
        v_new = beta2 * v_old + (1 - beta2) * g * g
        m_hat, v_hat = m_new / (1 - beta1**step), v_new / (1 - beta2**step)
        adam = m_hat / (np.sqrt(v_hat) + eps)
        u = adam + weight_decay * w
        weight_norm, update_norm = math.sqrt(float(w @ w)), math.sqrt(float(u @ u))
        clipped = min(weight_norm, clamp_value) if clamp_value is not None else weight_norm
        ratio = clipped / update_norm if weight_norm > 0 and update_norm > 0 else 1.0
        layers.append(LayerStep(w, g, m_new, v_new, m_hat, v_hat, adam, u, weight_norm, clipped, update_norm, ratio,
                                w - lr * ratio * u))
    return layers


def _check_settings(weights: Sequence[Any], grads: Sequence[Any], lr: float, betas: Any, eps: float,
                    weight_decay: float, clamp_value: float | None, step: int, m: Any, v: Any) -> None:
    """ValueError naming the first bad setting of ``lamb_step_by_hand`` (the rules of ``optim.LAMB``)."""
    for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
        check_non_negative(name, value)
    check_betas(betas)
    check_optional_positive("clamp_value", clamp_value, "no clamp")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"invalid step: {step!r} (must be an integer >= 1)")
    layers = len(weights)
    for name, values in (("grads", grads), ("m", m), ("v", v)):
        if values is not None and len(values) != layers:
            raise ValueError(f"{name} has {len(values)} layers, weights has {layers}")


def _show(value: Any) -> str:
    if np.ndim(value) == 0:
        return f"{float(value):.6g}"
    return "[" + ", ".join(f"{float(x):.6g}" for x in value) + "]"


ALGORITHM_2 = (
    ("g = ∇ℓ(w)", "g"),
    ("m ← β1·m + (1 − β1)·g", "m"),
    ("v ← β2·v + (1 − β2)·g²", "v"),
    ("m̂ = m / (1 − β1ᵗ)", "m_hat"),
    ("v̂ = v / (1 − β2ᵗ)", "v_hat"),
    ("m̂ / (√v̂ + ε)", "adam"),
    ("u = m̂ / (√v̂ + ε) + λ·w", "u"),
    ("‖w‖", "weight_norm"),
    ("φ(‖w‖) = min(‖w‖, clamp)", "clipped_weight_norm"),
    ("‖u‖", "update_norm"),
    ("r = φ(‖w‖) / ‖u‖", "trust_ratio"),
    ("w ← w − η·r·u", "new_w"),
)


def algorithm_lines(layers: Sequence[LayerStep]) -> list[str]:
    """One line per line of Algorithm 2: the formula, then its value in each layer."""
    header = f"{'Algorithm 2 (LAMB)':28s}" + "".join(f"  {'layer ' + str(i + 1):34s}" for i in range(len(layers)))
    lines = [header, "-" * len(header)]
    for formula, field in ALGORITHM_2:
        lines.append(f"{formula:28s}" + "".join(f"  {_show(getattr(layer, field)):34s}" for layer in layers))
    return lines


def lamb_step_with_optimizer(
    weights: Sequence[Any], grads: Sequence[Any], lr: float, betas: tuple[float, float], eps: float,
    weight_decay: float, clamp_value: float | None,
) -> tuple[list[Any], list[dict]]:
    """The same first step with ``optim.LAMB`` on float64 tensors: the new weights and each layer's state."""
    params = [Tensor(np.asarray(w, dtype=np.float64), requires_grad=True) for w in weights]
    optimizer = optim.LAMB(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clamp_value=clamp_value)
    for p, g in zip(params, grads):
        p.grad = np.asarray(g, dtype=np.float64)
    optimizer.step()
    return [backend.to_numpy(p.data) for p in params], [optimizer.state[p] for p in params]
