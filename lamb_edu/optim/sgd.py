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
from lamb_edu.backend import xp
from lamb_edu.optim.optimizer import Optimizer, check_non_negative

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0)``."""

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.0, dampening: float = 0.0,
        nesterov: bool = False, weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_non_negative(name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"invalid nesterov: True needs momentum > 0 and dampening 0, got momentum={group['momentum']!r}, "
                f"dampening={group['dampening']!r}"
            )

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0}  # the momentum buffer is made from the first gradient it sees

    def _update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        state["step"] += 1
        scratch = self._scratch(p.data)
        grad = self._l2_gradient(p, grad, weight_decay)  # g ← g + weight_decay·w
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:  # b ← g
                buffer = state["momentum_buffer"] = grad.copy()
            else:  # b ← momentum·b + (1 − dampening)·g
                xp.multiply(buffer, momentum, out=buffer)
                xp.multiply(grad, 1.0 - group["dampening"], out=scratch)
                xp.add(buffer, scratch, out=buffer)
            if group["nesterov"]:  # d ← g + momentum·b
                xp.multiply(buffer, momentum, out=scratch)
                grad = xp.add(grad, scratch, out=scratch)
            else:  # d ← b
                grad = buffer
        xp.multiply(grad, lr, out=scratch)  # w ← w − lr·d
        xp.subtract(p.data, scratch, out=p.data)
