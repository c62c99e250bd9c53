"""Adam (Kingma & Ba, 2015, Algorithm 1), with PyTorch's defaults and its AMSGrad option.

With g = ∇L(w) + weight_decay·w (weight decay as an L2 term on the gradient, as ``torch.optim.Adam``)::

    m ← β1·m + (1 − β1)·g                 first moment: a running mean of g
    v ← β2·v + (1 − β2)·g²                second moment: a running mean of g²
    m̂ ← m / (1 − β1ᵗ),  v̂ ← v / (1 − β2ᵗ)   bias correction (m and v start at 0)
    w ← w − lr·m̂ / (√v̂ + eps)

AMSGrad (Reddi et al., 2018) divides by the running maximum of v instead of v (set it before the
first step: a parameter's state is made then).
``bias_correction=False`` drops the two divisions (a switch PyTorch lacks): early steps then are
too small, the lesson of the paper's Section 3.

``update`` below is the rule, composed from ``optim.functional``; ``functional.adam_weight_decay``
is the one place where Adam's L2 term and AdamW's decoupled decay part. With ``fused=True`` (the
default) ``optim.fused.adam`` computes the same pieces block by block in cache and on a few threads
(or as one CUDA kernel), equal to float32 rounding; ``fused=False`` always runs ``update``.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim import fused
from lamb_edu.optim.checks import check_betas, check_flag, check_non_negative
from lamb_edu.optim.functional import adam_weight_decay, add_decayed_weights, apply_updates, scale, scale_by_adam
from lamb_edu.optim.optimizer import Optimizer, Visit

__all__ = ["Adam"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, bias_correction=True,
    fused=True)``."""

    # AdamW sets this: weight decay then shrinks w directly instead of entering the gradient.
    decoupled_weight_decay = False
    squares_gradient = True
    state_keys = {"step": "int", "m": "array", "v": "array", "v_max": "array"}

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, bias_correction: bool = True, fused: bool = True,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, bias_correction=bias_correction)
        check_flag("fused", fused)
        self.fused = fused
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_betas(group["betas"])
        for name in ("amsgrad", "bias_correction"):
            check_flag(name, group[name])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}
        if group["amsgrad"]:
            state["v_max"] = xp.zeros_like(p.data)
        return state

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        lr, (beta1, beta2), w = group["lr"], group["betas"], p.data
        state["step"] += 1
        l2, decay_factor = adam_weight_decay(lr, group["weight_decay"], self.decoupled_weight_decay)
        if decay_factor != 1.0:  # AdamW: w ← (1 − lr·λ)·w
            xp.multiply(w, decay_factor, out=w)
        grad = add_decayed_weights(grad, w, l2, out=self._scratch(w, 1))  # Adam: g ← g + λ·w (L2 regularisation)
        u = scale_by_adam(grad, state["m"], state["v"], step=state["step"], beta1=beta1, beta2=beta2, eps=group["eps"],
                          bias_correction=group["bias_correction"], v_max=state["v_max"] if group["amsgrad"] else None,
                          out=self._scratch(w))
        apply_updates(w, scale(u, -lr, out=u))  # w ← w − lr·m̂ / (√v̂ + eps)

    def fused_update(self, visits: list[Visit], grad_scale: float) -> list[Visit]:
        """``optim.fused.adam``: the same step, blocked and threaded (or one CUDA kernel); returns the rest."""
        return fused.adam(visits, decoupled=self.decoupled_weight_decay)
