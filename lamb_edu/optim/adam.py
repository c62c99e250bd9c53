"""Adam (Kingma & Ba, 2015, Algorithm 1), with PyTorch's defaults and its AMSGrad option.

With g = ∇L(w) + weight_decay·w (weight decay as an L2 term on the gradient, as ``torch.optim.Adam``)::

    m ← β1·m + (1 − β1)·g                 first moment: a running mean of g
    v ← β2·v + (1 − β2)·g²                second moment: a running mean of g²
    m̂ ← m / (1 − β1ᵗ),  v̂ ← v / (1 − β2ᵗ)   bias correction (m and v start at 0)
    w ← w − lr·m̂ / (√v̂ + eps)

AMSGrad (Reddi et al., 2018) divides by the running maximum of v instead of v.
``bias_correction=False`` drops the two divisions (a switch PyTorch lacks): early steps then are
too small, the lesson of the paper's Section 3.

The step below is the reference. With ``fused=True`` (the default) contiguous float arrays take
``optim.fused.adam_step`` instead: the same equations, computed block by block in cache and on a few
threads (or as one CuPy kernel), equal to float32 rounding; ``fused=False`` always runs this code.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim import fused as fast
from lamb_edu.optim.functional import adam_direction, update_moments
from lamb_edu.optim.optimizer import Optimizer, check_betas, check_non_negative

__all__ = ["Adam"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, bias_correction=True,
    fused=True)``."""

    # AdamW sets this: weight decay then shrinks w directly instead of entering the gradient.
    decoupled_weight_decay = False

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, bias_correction: bool = True, fused: bool = True,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, bias_correction=bias_correction)
        self.fused = bool(fused)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_betas(group["betas"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}
        if group["amsgrad"]:
            state["v_max"] = xp.zeros_like(p.data)
        return state

    def _fast_path(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> bool:
        return self.fused and not group["amsgrad"] and fast.supports(p.data, grad, state["m"], state["v"])

    def _fused_update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        (beta1, beta2) = group["betas"]
        state["step"] += 1
        fast.adam_step(p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                       weight_decay=group["weight_decay"], decoupled=self.decoupled_weight_decay, step=state["step"],
                       bias_correction=group["bias_correction"])

    def _update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        m, v = state["m"], state["v"]
        state["step"] += 1
        scratch = self._scratch(p.data)
        if self.decoupled_weight_decay:  # w ← w − lr·weight_decay·w  (AdamW)
            if weight_decay != 0:
                xp.multiply(p.data, 1.0 - lr * weight_decay, out=p.data)
        else:  # g ← g + weight_decay·w  (L2 regularisation)
            grad = self._l2_gradient(p, grad, weight_decay)
        update_moments(m, v, grad, beta1, beta2, scratch)
        if group["amsgrad"]:  # divide by the largest v seen so far
            if "v_max" not in state:
                state["v_max"] = xp.zeros_like(v)
            v = xp.maximum(state["v_max"], v, out=state["v_max"])
        direction = adam_direction(m, v, state["step"], beta1, beta2, group["eps"], group["bias_correction"], out=scratch)
        xp.multiply(direction, lr, out=direction)  # w ← w − lr·m̂ / (√v̂ + eps)
        xp.subtract(p.data, direction, out=p.data)
