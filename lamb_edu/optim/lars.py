"""LARS: Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg, 2017, Algorithm 1).

SGD with momentum in which every parameter tensor (a "layer") gets its own local learning rate, the
trust ratio, so that its step is a fixed fraction of its weight norm however large its gradient::

    local_lr ← trust_coefficient·‖w‖ / (‖g‖ + weight_decay·‖w‖ + eps)    (1 if ‖w‖ or ‖g‖ is 0)
    v ← momentum·v + lr·local_lr·(g + weight_decay·w)
    w ← w − v                     (nesterov: w ← w − (momentum·v + lr·local_lr·(g + weight_decay·w)))

``use_trust_ratio=False`` still computes and records the ratio but steps with 1, which is SGD with
momentum and weight decay (v = lr·b for ``torch.optim.SGD``'s buffer b while lr is constant).
The ratio is ``functional.trust_ratio`` (LAMB's rule) with ‖g‖ for the direction's norm and the
weight decay in its denominator. After every step ``state[p]`` holds, as floats, ``weight_norm``
(‖w‖), ``grad_norm`` (‖g‖), ``ratio_denominator`` (‖g‖ + weight_decay·‖w‖, what the ratio divides
by besides eps: a bound of ‖g + weight_decay·w‖, not that norm) and ``trust_ratio`` (local_lr).

``update`` is two pieces any caller can compose (``distributed.sharded`` calls them around its
all-reduce of the norms): ``local_lr`` (the ratio from ‖w‖ and ‖g‖) and ``momentum_step`` (the
momentum update of w with that local_lr, element by element, so on any slice of a layer).
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import check_beta, check_flag, check_non_negative
from lamb_edu.optim.functional import (
    TrustRatio,
    add_decayed_weights,
    measure_trust_ratio,
    momentum,
    momentum_direction,
    norm,
    scale,
)
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["LARS"]


class LARS(Optimizer):
    """``LARS(params, lr, momentum=0.9, weight_decay=0, trust_coefficient=1e-3, eps=1e-8, nesterov=False,
    use_trust_ratio=True)``."""

    state_keys = {"step": "int", "momentum_buffer": "array", "weight_norm": "float", "grad_norm": "float",
                  "ratio_denominator": "float", "trust_ratio": "float"}

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

    def local_lr(self, group: dict[str, Any], weight_norm: float, grad_norm: float) -> TrustRatio:
        """trust_coefficient·‖w‖ / (‖g‖ + λ‖w‖ + eps) of a whole layer from its two norms (1 if either is 0).

        Returns what ``state`` records: ``TrustRatio(weight_norm, ratio_denominator=‖g‖ + λ‖w‖, trust_ratio)``.
        """
        return measure_trust_ratio(weight_norm, grad_norm, coefficient=group["trust_coefficient"], eps=group["eps"],
                                   weight_decay=group["weight_decay"])

    def momentum_step(self, weight: Any, grad: Any, buffer: Any, group: dict[str, Any], local_lr: float, *,
                      out: Any, look_ahead: Any) -> None:
        """In place: v ← momentum·v + lr·local_lr·(g + λ·w), then w ← w − v (Nesterov: w − (that step + momentum·v)).

        ``buffer`` is v; local_lr is replaced by 1 with ``use_trust_ratio=False``; ``out`` and
        ``look_ahead`` are two temporaries of the weight's shape. Works on any slice of a layer.
        """
        used = local_lr if group["use_trust_ratio"] else 1.0
        step = add_decayed_weights(grad, weight, group["weight_decay"], out=out)
        step = scale(step, group["lr"] * used, out=out)
        momentum(buffer, step, group["momentum"])
        xp.subtract(weight, momentum_direction(buffer, step, group["momentum"], group["nesterov"], out=look_ahead),
                    out=weight)

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        w = p.data
        state["step"] += 1
        state["grad_norm"] = grad_norm = norm(grad)
        measured = self.local_lr(group, norm(w), grad_norm)  # recorded even when the step uses 1
        state.update(measured._asdict())
        self.momentum_step(w, grad, state["momentum_buffer"], group, measured.trust_ratio,
                           out=self._scratch(w), look_ahead=self._scratch(w, 1))
