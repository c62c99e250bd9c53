"""Stochastic gradient descent, with optional momentum (heavy ball or Nesterov) and weight decay.

With g = ∇L(w) + weight_decay·w (weight decay as an L2 term on the gradient), as ``torch.optim.SGD``::

    b ← g                                   at the first step
    b ← momentum·b + (1 − dampening)·g      afterwards
    d ← g + momentum·b   (nesterov)   or   d ← b   (heavy ball)   or   d ← g   (momentum = 0)
    w ← w − lr·d

Polyak 1964 for momentum; Sutskever et al. 2013 for this form of Nesterov's method.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.optim.checks import check_beta, check_flag, check_fraction, check_non_negative
from lamb_edu.optim.functional import add_decayed_weights, apply_updates, momentum, momentum_direction, scale
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0)``."""

    state_keys = {"step": "int", "momentum_buffer": "array"}

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.0, dampening: float = 0.0,
        nesterov: bool = False, weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "weight_decay"):
            check_non_negative(name, group[name])
        check_beta("momentum", group["momentum"])
        check_fraction("dampening", group["dampening"])
        check_flag("nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"invalid nesterov: True needs momentum > 0 and dampening 0, got momentum={group['momentum']!r}, "
                f"dampening={group['dampening']!r}"
            )

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        w, scratch = p.data, self._scratch(p.data)
        state["step"] += 1
        grad = add_decayed_weights(grad, w, group["weight_decay"], out=self._scratch(w, 1))  # g ← g + λ·w
        if group["momentum"] != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:  # b ← g
                buffer = state["momentum_buffer"] = grad.copy()
            else:  # b ← momentum·b + (1 − dampening)·g
                momentum(buffer, grad, group["momentum"], group["dampening"], scratch=scratch)
            # d ← b, or d ← g + momentum·b (Nesterov)
            grad = momentum_direction(buffer, grad, group["momentum"], group["nesterov"], out=scratch)
        apply_updates(w, scale(grad, -group["lr"], out=scratch))  # w ← w − lr·d
