"""AdaGrad (Duchi, Hazan & Singer, 2011), as ``torch.optim.Adagrad``.

Each coordinate gets its own step size, shrinking with the sum of its squared gradients. With
g = ∇L(w) + weight_decay·w, at step t::

    lr_t ← lr / (1 + (t − 1)·lr_decay)
    G ← G + g²                             (G starts at initial_accumulator_value)
    w ← w − lr_t·g / (√G + eps)

Coordinates with rare or small gradients keep large steps; the price is that G only grows, so
every step size decays towards zero (the problem RMSprop and Adam fix with running averages).
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import check_non_negative
from lamb_edu.optim.functional import add_decayed_weights, apply_updates, scale
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)``."""

    state_keys = {"step": "int", "sum_of_squares": "array"}
    squares_gradient = True

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0, eps: float = 1e-10,
    ) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_non_negative(name, group[name])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "sum_of_squares": xp.full_like(p.data, group["initial_accumulator_value"])}

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        w, sum_of_squares, scratch = p.data, state["sum_of_squares"], self._scratch(p.data)
        state["step"] += 1
        grad = add_decayed_weights(grad, w, group["weight_decay"], out=self._scratch(w, 1))  # g ← g + λ·w
        lr_t = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        xp.multiply(grad, grad, out=scratch)  # G ← G + g²
        xp.add(sum_of_squares, scratch, out=sum_of_squares)
        xp.sqrt(sum_of_squares, out=scratch)  # w ← w − lr_t·g / (√G + eps)
        xp.add(scratch, group["eps"], out=scratch)
        xp.divide(grad, scratch, out=scratch)
        apply_updates(w, scale(scratch, -lr_t, out=scratch))
