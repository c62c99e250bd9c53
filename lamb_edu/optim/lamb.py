"""LAMB: Layer-wise Adaptive Moments for Batch training (You et al., 2019, Algorithm 2).

LAMB is Adam's direction, plus decoupled weight decay, times LARS's trust ratio, times lr. For each
parameter tensor (a "layer") w with gradient g, at step t::

    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²        Adam's moments
    u ← m̂ / (√v̂ + eps) + weight_decay·w                    Adam direction plus weight decay
    trust_ratio ← φ(‖w‖) / ‖u‖                              LARS's layer-wise ratio
    w ← w − lr·trust_ratio·u

φ clips ‖w‖ to [0, clamp_value]; the trust ratio is 1 when ‖w‖ or ‖u‖ is 0 and, with ``trust_clip``,
at most 1. Because ‖trust_ratio·u‖ = φ(‖w‖), every layer moves by lr times its own weight norm,
whatever the scale of its gradient: that is what lets the batch (and the lr) grow.

- ``bias_correction=False`` uses m and v themselves (the paper's v3 and the code of cybertronai's
  pytorch-lamb, which "An intuitive understanding of the LAMB optimizer" uses: with it and the
  defaults here, this is exactly that rule).
- ``use_trust_ratio=False`` still computes and records the trust ratio but steps with 1: the "Adam"
  baseline of that code (AdamW when bias correction is on).
- ``grad_averaging=False`` makes m ← β1·m + g.
- ``max_grad_norm`` first scales all gradients together so their global norm is at most that
  value (the caller's ``.grad`` arrays are not changed).

After every step ``state[p]`` holds ``weight_norm`` (‖w‖ before the step, not clipped),
``update_norm`` (‖u‖) and ``trust_ratio`` (the ratio computed, whether or not it was used) as floats.

The step below is the reference. With ``fused=True`` (the default) contiguous float arrays take
``optim.fused.lamb_step`` instead: the same equations in two passes over cache-sized blocks on a few
threads (or CuPy kernels), equal to float32 rounding, norms and ratio included; ``fused=False``
always runs this code.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim import fused as fast
from lamb_edu.optim.functional import adam_direction, norm, trust_ratio, update_moments
from lamb_edu.optim.optimizer import Optimizer, check_betas, check_non_negative

__all__ = ["LAMB"]


class LAMB(Optimizer):
    """``LAMB(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, bias_correction=True,
    clamp_value=10.0, trust_clip=False, use_trust_ratio=True, grad_averaging=True, max_grad_norm=None, fused=True)``."""

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
        weight_decay: float = 0.0, bias_correction: bool = True, clamp_value: float | None = 10.0,
        trust_clip: bool = False, use_trust_ratio: bool = True, grad_averaging: bool = True,
        max_grad_norm: float | None = None, fused: bool = True,
    ) -> None:
        if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float))
                                          or not max_grad_norm > 0):
            raise ValueError(f"invalid max_grad_norm: {max_grad_norm!r} (must be a number > 0, or None)")
        self.max_grad_norm = max_grad_norm
        self.fused = bool(fused)
        self._grad_scale = 1.0  # set by each step from the global gradient norm
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, bias_correction=bias_correction, clamp_value=clamp_value,
                        trust_clip=trust_clip, use_trust_ratio=use_trust_ratio, grad_averaging=grad_averaging)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_betas(group["betas"])
        clamp_value = group["clamp_value"]
        if clamp_value is not None and (isinstance(clamp_value, bool) or not isinstance(clamp_value, (int, float))
                                        or not clamp_value > 0):
            raise ValueError(f"invalid clamp_value: {clamp_value!r} (must be a number > 0, or None for no clamp)")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}

    def _update(self) -> None:
        self._grad_scale = 1.0
        if self.max_grad_norm is not None:  # clip the global gradient norm by scaling g inside the moments
            grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
            global_norm = sum(norm(grad) ** 2 for grad in grads) ** 0.5
            if global_norm > self.max_grad_norm:
                self._grad_scale = self.max_grad_norm / global_norm
        super()._update()

    def _fast_path(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> bool:
        return self.fused and fast.supports(p.data, grad, state["m"], state["v"])

    def _fused_update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        (beta1, beta2) = group["betas"]
        state["step"] += 1
        state["weight_norm"], state["update_norm"], state["trust_ratio"] = fast.lamb_step(
            p.data, grad, state["m"], state["v"], lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], step=state["step"], bias_correction=group["bias_correction"],
            grad_scale=self._grad_scale, grad_averaging=group["grad_averaging"],
            clamp_value=group["clamp_value"], trust_clip=group["trust_clip"], use_trust_ratio=group["use_trust_ratio"])

    def _update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        (beta1, beta2), w = group["betas"], p.data
        state["step"] += 1
        # Adam's moments, and its (bias-corrected) direction u = m̂ / (√v̂ + eps)
        update_moments(state["m"], state["v"], grad, beta1, beta2, self._scratch(w),
                       grad_scale=self._grad_scale, grad_averaging=group["grad_averaging"])
        u = adam_direction(state["m"], state["v"], state["step"], beta1, beta2, group["eps"],
                           group["bias_correction"], out=self._scratch(w))
        # plus decoupled weight decay: u ← u + weight_decay·w
        if group["weight_decay"] != 0:
            decay = xp.multiply(w, group["weight_decay"], out=self._scratch(w, 1))
            xp.add(u, decay, out=u)
        # times LARS's trust ratio φ(‖w‖) / ‖u‖
        state["weight_norm"] = norm(w)
        state["update_norm"] = norm(u)
        state["trust_ratio"] = trust_ratio(state["weight_norm"], state["update_norm"],
                                           clamp_value=group["clamp_value"], trust_clip=group["trust_clip"])
        ratio = state["trust_ratio"] if group["use_trust_ratio"] else 1.0
        # times lr: w ← w − lr·trust_ratio·u
        xp.multiply(u, group["lr"] * ratio, out=u)
        xp.subtract(w, u, out=w)
