"""LARS: Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg, 2017, Algorithm 1).

SGD with momentum in which every parameter tensor (a "layer") gets its own local learning rate, the
trust ratio, so that its step is a fixed fraction of its weight norm however large its gradient::

    local_lr ← trust_coefficient·‖w‖ / (‖g‖ + weight_decay·‖w‖ + eps)    (1 if ‖w‖ or ‖g‖ is 0)
    v ← momentum·v + lr·local_lr·(g + weight_decay·w)
    w ← w − v                     (nesterov: w ← w − (momentum·v + lr·local_lr·(g + weight_decay·w)))

``use_trust_ratio=False`` still computes and records the ratio but steps with 1, which is SGD with
momentum and weight decay (v = lr·b for ``torch.optim.SGD``'s buffer b while lr is constant).
The ratio is ``functional.trust_ratio`` (LAMB's rule) with ‖g‖ for the update norm and the weight
decay in its denominator. After every step ``state[p]`` holds, as floats, ``weight_norm`` (‖w‖),
``grad_norm`` (‖g‖), ``trust_denominator`` (‖g‖ + weight_decay·‖w‖, what the ratio divides by besides
eps; a bound of ‖g + weight_decay·w‖, not that norm) and ``trust_ratio`` (local_lr). ``update_norm``
holds the denominator too, only so that ``train.trust_statistics`` finds LARS's ratio: it is not the
norm of LARS's update.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import check_beta, check_flag, check_non_negative
from lamb_edu.optim.functional import (add_decayed_weights, apply_updates, momentum, momentum_direction, norm, scale,
                                       trust_ratio)
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["LARS"]


class LARS(Optimizer):
    """``LARS(params, lr, momentum=0.9, weight_decay=0, trust_coefficient=1e-3, eps=1e-8, nesterov=False,
    use_trust_ratio=True)``."""

    state_keys = {"step": "int", "momentum_buffer": "array", "weight_norm": "float", "grad_norm": "float",
                  "trust_denominator": "float", "update_norm": "float", "trust_ratio": "float"}

    def __init__(
        self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3, eps: float = 1e-8, nesterov: bool = False, use_trust_ratio: bool = True,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, nesterov=nesterov, use_trust_ratio=use_trust_ratio)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "weight_decay", "trust_coefficient", "eps"):
            check_non_negative(name, group[name])
        check_beta("momentum", group["momentum"])
        for name in ("nesterov", "use_trust_ratio"):
            check_flag(name, group[name])
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError(f"invalid nesterov: True needs momentum > 0, got momentum={group['momentum']!r}")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "momentum_buffer": xp.zeros_like(p.data)}

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        w, v, weight_decay = p.data, state["momentum_buffer"], group["weight_decay"]
        state["step"] += 1
        # local_lr = trust_coefficient·‖w‖ / (‖g‖ + λ‖w‖ + eps): LAMB's rule, with ‖g‖ and λ in the denominator
        state["weight_norm"], state["grad_norm"] = weight_norm, grad_norm = norm(w), norm(grad)
        state["trust_denominator"] = state["update_norm"] = grad_norm + weight_decay * weight_norm
        state["trust_ratio"] = trust_ratio(weight_norm, grad_norm, coefficient=group["trust_coefficient"],
                                           eps=group["eps"], weight_decay=weight_decay)
        local_lr = state["trust_ratio"] if group["use_trust_ratio"] else 1.0
        # v ← momentum·v + lr·local_lr·(g + λ·w)
        step = add_decayed_weights(grad, w, weight_decay, out=self._scratch(w))
        step = scale(step, group["lr"] * local_lr, out=self._scratch(w))
        momentum(v, step, group["momentum"])
        # w ← w − v, or w ← w − (step + momentum·v) (Nesterov)
        xp.subtract(w, momentum_direction(v, step, group["momentum"], group["nesterov"], out=self._scratch(w, 1)), out=w)
