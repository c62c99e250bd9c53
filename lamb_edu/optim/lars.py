"""LARS: Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg, 2017, Algorithm 1).

SGD with momentum in which every parameter tensor (a "layer") gets its own local learning rate, the
trust ratio, so that its step is a fixed fraction of its weight norm however large its gradient::

    local_lr ← trust_coefficient·‖w‖ / (‖g‖ + weight_decay·‖w‖ + eps)    (1 if ‖w‖ or ‖g‖ is 0)
    v ← momentum·v + lr·local_lr·(g + weight_decay·w)
    w ← w − v                     (nesterov: w ← w − (momentum·v + lr·local_lr·(g + weight_decay·w)))

``use_trust_ratio=False`` still computes and records the ratio but steps with 1, which is SGD with
momentum and weight decay (v = lr·b for ``torch.optim.SGD``'s buffer b while lr is constant).
After every step ``state[p]`` holds ``weight_norm`` (‖w‖), ``update_norm`` (‖g‖ + weight_decay·‖w‖,
the norm the ratio divides by) and ``trust_ratio`` (local_lr) as floats.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.functional import norm, trust_ratio
from lamb_edu.optim.optimizer import Optimizer, check_non_negative

__all__ = ["LARS"]


class LARS(Optimizer):
    """``LARS(params, lr, momentum=0.9, weight_decay=0, trust_coefficient=1e-3, eps=1e-8, nesterov=False,
    use_trust_ratio=True)``."""

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3, eps: float = 1e-8, nesterov: bool = False, use_trust_ratio: bool = True,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, nesterov=nesterov, use_trust_ratio=use_trust_ratio)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "weight_decay", "trust_coefficient", "eps"):
            check_non_negative(name, group[name])
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError(f"invalid nesterov: True needs momentum > 0, got momentum={group['momentum']!r}")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "momentum_buffer": xp.zeros_like(p.data)}

    def _update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        w, v, weight_decay, momentum = p.data, state["momentum_buffer"], group["weight_decay"], group["momentum"]
        state["step"] += 1
        # the trust ratio: a zero ‖g‖ gets ratio 1 even when weight decay makes the denominator positive
        weight_norm, grad_norm = norm(w), norm(grad)
        state["weight_norm"] = weight_norm
        state["update_norm"] = grad_norm + weight_decay * weight_norm
        state["trust_ratio"] = 1.0 if grad_norm == 0.0 else trust_ratio(
            weight_norm, state["update_norm"], coefficient=group["trust_coefficient"], eps=group["eps"])
        local_lr = state["trust_ratio"] if group["use_trust_ratio"] else 1.0
        # v ← momentum·v + lr·local_lr·(g + weight_decay·w)
        step = self._scratch(w)
        xp.multiply(w, weight_decay, out=step)
        xp.add(step, grad, out=step)
        xp.multiply(step, group["lr"] * local_lr, out=step)
        xp.multiply(v, momentum, out=v)
        xp.add(v, step, out=v)
        if group["nesterov"]:  # w ← w − (momentum·v + step)
            look_ahead = xp.multiply(v, momentum, out=self._scratch(w, 1))
            xp.add(step, look_ahead, out=step)
            xp.subtract(w, step, out=w)
        else:  # w ← w − v
            xp.subtract(w, v, out=w)
