"""RMSprop (Hinton, Coursera lecture 6e, 2012; centred form from Graves, 2013), as ``torch.optim.RMSprop``.

AdaGrad with a running average instead of a sum, so old gradients are forgotten. With
g = ∇L(w) + weight_decay·w::

    v ← α·v + (1 − α)·g²                   running mean of g²
    ḡ ← α·ḡ + (1 − α)·g                    (centered only) running mean of g
    s ← √(v − ḡ²) + eps   (centered)   or   √v + eps
    b ← momentum·b + g / s,   w ← w − lr·b      (momentum > 0)
    w ← w − lr·g / s                            (momentum = 0)

Centering divides by an estimate of the gradient's standard deviation instead of its root mean square.
The running means are ``functional.update_second_moment`` and ``update_first_moment``, Adam's v and m
with β = α.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import check_beta, check_flag, check_non_negative
from lamb_edu.optim.functional import (
    add_decayed_weights,
    apply_updates,
    momentum,
    scale,
    update_first_moment,
    update_second_moment,
)
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)``."""

    state_keys = {"step": "int", "v": "array", "grad_average": "array", "momentum_buffer": "array"}
    squares_gradient = True

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
        weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_beta("alpha", group["alpha"])
        check_beta("momentum", group["momentum"])
        check_flag("centered", group["centered"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "v": xp.zeros_like(p.data)}
        if group["centered"]:
            state["grad_average"] = xp.zeros_like(p.data)
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(p.data)
        return state

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        alpha, v, scratch = group["alpha"], state["v"], self._scratch(p.data)
        state["step"] += 1
        grad = add_decayed_weights(grad, p.data, group["weight_decay"], out=self._scratch(p.data, 1))  # g ← g + λ·w
        update_second_moment(v, grad, alpha, 1.0 - alpha, scratch=scratch)  # v ← α·v + (1 − α)·g²
        if group["centered"]:  # ḡ ← α·ḡ + (1 − α)·g,  s ← √(v − ḡ²) + eps
            grad_average = update_first_moment(_state_array(state, "grad_average", p), grad, alpha, 1.0 - alpha,
                                               scratch=scratch)
            xp.multiply(grad_average, grad_average, out=scratch)
            xp.subtract(v, scratch, out=scratch)
            xp.sqrt(scratch, out=scratch)
        else:  # s ← √v + eps
            xp.sqrt(v, out=scratch)
        xp.add(scratch, group["eps"], out=scratch)
        xp.divide(grad, scratch, out=scratch)  # g / s
        if group["momentum"] > 0:  # b ← momentum·b + g / s,  w ← w − lr·b
            buffer = momentum(_state_array(state, "momentum_buffer", p), scratch, group["momentum"])
            scale(buffer, -group["lr"], out=scratch)
        else:  # w ← w − lr·g / s
            scale(scratch, -group["lr"], out=scratch)
        apply_updates(p.data, scratch)


def _state_array(state: dict[str, Any], name: str, p: Tensor) -> Any:
    """``state[name]``, made (zeros) if a group setting was switched on after the first step."""
    if name not in state:
        state[name] = xp.zeros_like(p.data)
    return state[name]
