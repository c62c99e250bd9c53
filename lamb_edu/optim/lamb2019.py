"""LAMB as the article's code ran it: cybertronai/pytorch-lamb at commit ff2245e (28 April - 1 May 2019).

"An intuitive understanding of the LAMB optimizer" trained its MNIST runs with this rule, and its
TensorBoard histograms are labelled r, r1 and r2 because this code logged them. It predates the
paper's v3 and differs from ``optim.LAMB`` (and from the June 2019 code, commit 207f672, which
``LAMB(bias_correction=False)`` with its defaults reproduces) in four places. For each parameter
tensor w with gradient grad, at step t::

    g ← grad + weight_decay·w                                 weight decay as an L2 term, before the moments
    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²            torch.optim.Adam's moments (2019)
    adam_step ← m / (√v + eps)                                eps added to √v, no bias correction here ...
    step_size ← lr·√(1 − β2ᵗ) / (1 − β1ᵗ)                      ... but folded into the step size
    r1 ← RMS(w),  r2 ← RMS(adam_step)                         root mean squares, not norms
    r ← 1 if r1 = 0 or r2 = 0, else min(r1 / r2, 10)          the ratio itself is clamped, not ‖w‖
    w ← w − step_size·r·adam_step

r1/r2 equals ‖w‖/‖adam_step‖ (the √n of the two means cancel), but r1 and r2 on their own are the
norms divided by √n, so a layer's r1 does not grow with its number of weights. With ``adam=True`` the
step uses r = 1 (r is still computed and recorded): then this is 2019's ``torch.optim.Adam`` with L2
weight decay, which differs from ``optim.Adam`` only in where eps sits (eps/√(1 − β2ᵗ) there).

After every step ``state[p]`` holds, as floats, ``r``, ``r1`` and ``r2`` (the article's names, r as
computed even when ``adam=True`` steps with 1) and, for the training loop's logs, ``weight_norm`` ‖w‖,
``ratio_denominator`` ‖adam_step‖ and ``trust_ratio`` r. The rule is the pieces of ``optim.functional``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import check_betas, check_flag, check_non_negative
from lamb_edu.optim.functional import (
    add_decayed_weights,
    apply_updates,
    bias_corrections,
    norm,
    scale,
    scale_by_adam,
    trust_ratio,
)
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["LAMB2019", "RATIO_CLAMP"]

RATIO_CLAMP = 10.0  # r = min(r1 / r2, 10) in ff2245e


class LAMB2019(Optimizer):
    """``LAMB2019(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, adam=False)``: pytorch-lamb ff2245e."""

    state_keys = {"step": "int", "m": "array", "v": "array", "r": "float", "r1": "float", "r2": "float",
                  "weight_norm": "float", "ratio_denominator": "float", "trust_ratio": "float"}

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, adam: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, adam=adam)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_betas(group["betas"])
        check_flag("adam", group["adam"])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        (beta1, beta2), w = group["betas"], p.data
        state["step"] += 1
        # g ← grad + λ·w: L2 weight decay enters the moments (the caller's gradient is not written); a
        # clipped or rescaled gradient is scaled before the decay is added, so the scale never touches λ·w
        grad = grad if grad_scale == 1.0 else scale(grad, grad_scale, out=self._scratch(w, 2))
        g = add_decayed_weights(grad, w, group["weight_decay"], out=self._scratch(w, 1))
        # adam_step = m / (√v + eps): the moments with no bias correction in the direction
        adam_step = scale_by_adam(g, state["m"], state["v"], step=state["step"], beta1=beta1, beta2=beta2,
                                  eps=group["eps"], bias_correction=False, out=self._scratch(w))
        # the bias correction, folded into the step size as torch.optim.Adam did in 2019
        bias_correction1, bias_correction2 = bias_corrections(state["step"], beta1, beta2)
        step_size = group["lr"] * math.sqrt(bias_correction2) / bias_correction1
        # r1 = RMS(w), r2 = RMS(adam_step); r = min(r1 / r2, 10), or 1 when either is 0
        weight_norm, update_norm = norm(w), norm(adam_step)
        root_n = math.sqrt(w.size)
        r1, r2 = weight_norm / root_n, update_norm / root_n
        r = min(trust_ratio(r1, r2), RATIO_CLAMP)
        state.update(r=r, r1=r1, r2=r2, weight_norm=weight_norm, ratio_denominator=update_norm, trust_ratio=r)
        # w ← w − step_size·r·adam_step (r = 1 in Adam mode)
        apply_updates(w, scale(adam_step, -step_size * (1.0 if group["adam"] else r), out=adam_step))
