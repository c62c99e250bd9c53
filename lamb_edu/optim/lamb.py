"""LAMB: Layer-wise Adaptive Moments for Batch training (You et al., 2019, Algorithm 2).

LAMB is Adam's direction, plus decoupled weight decay, times LARS's trust ratio, times lr. For each
parameter tensor (a "layer") w with gradient g, at step t::

    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²        Adam's moments
    u ← m̂ / (√v̂ + eps) + weight_decay·w                    Adam direction plus weight decay
    trust_ratio ← φ(‖w‖) / ‖u‖                              LARS's layer-wise ratio
    w ← w − lr·trust_ratio·u

φ clips ‖w‖ to [0, clamp_value]; the trust ratio is 1 when ‖w‖ or ‖u‖ is 0 and, with ``trust_clip``,
at most 1. Because ‖trust_ratio·u‖ = φ(‖w‖), every layer moves by lr·min(‖w‖, clamp_value):
lr times its own weight norm below the clamp, lr·clamp_value above it, whatever the scale of its
gradient: that is what lets the batch (and the lr) grow.

- ``bias_correction=False`` uses m and v themselves (the paper's v3 and the code of cybertronai's
  pytorch-lamb, which "An intuitive understanding of the LAMB optimizer" uses: with it and the
  defaults here, this is exactly that rule).
- ``use_trust_ratio=False`` still computes and records the trust ratio but steps with 1: the "Adam"
  baseline of that code (AdamW when bias correction is on).
- ``grad_averaging=False`` makes m ← β1·m + g.
- ``max_grad_norm`` first scales all gradients together so their global norm is at most that
  value (the caller's ``.grad`` arrays are not changed).

After every step ``state[p]`` holds the ``TrustRatio`` fields as floats: ``weight_norm`` (‖w‖ before
the step, not clipped), ``ratio_denominator`` (‖u‖) and ``trust_ratio`` (the ratio computed, whether
or not it was used).

``update`` below is the rule, in three pieces that any caller can compose (``distributed.sharded``
calls them around its all-reduce of the norms; with ``fused=True`` it runs the first and last as the
fused form's blocked passes, ``fused.lamb_first_pass`` and ``lamb_second_pass``, and still calls
``trust_ratio`` and ``step_size``):

- ``direction``: Adam's moments and u = m̂/(√v̂ + eps) + weight_decay·w, everything before the ratio;
- ``trust_ratio``: φ(‖w‖)/‖u‖ from the two norms, however they were computed;
- ``apply``: w ← w − lr·trust_ratio·u (lr alone with ``use_trust_ratio=False``).

With ``fused=True`` (the default) ``optim.fused.lamb`` computes the same pieces in two passes over
cache-sized blocks on a few threads (or CuPy kernels), equal to float32 rounding, norms and ratio
included; ``fused=False`` always runs ``update``. To change one piece (say the trust ratio's
denominator) override it, or ``update``, in a subclass and set ``fused_update = None``.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim import fused
from lamb_edu.optim.checks import check_betas, check_flag, check_non_negative, check_optional_positive
from lamb_edu.optim.functional import (
    TrustRatio,
    add_decayed_weights,
    apply_updates,
    measure_trust_ratio,
    norm,
    scale,
    scale_by_adam,
)
from lamb_edu.optim.optimizer import Optimizer, Visit

__all__ = ["LAMB"]


class LAMB(Optimizer):
    """``LAMB(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, bias_correction=True,
    clamp_value=10.0, trust_clip=False, use_trust_ratio=True, grad_averaging=True, max_grad_norm=None, fused=True)``."""

    squares_gradient = True
    state_keys = {"step": "int", "m": "array", "v": "array",
                  "weight_norm": "float", "ratio_denominator": "float", "trust_ratio": "float"}

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
        weight_decay: float = 0.0, bias_correction: bool = True, clamp_value: float | None = 10.0,
        trust_clip: bool = False, use_trust_ratio: bool = True, grad_averaging: bool = True,
        max_grad_norm: float | None = None, fused: bool = True,
    ) -> None:
        check_optional_positive("max_grad_norm", max_grad_norm, "no clipping")
        check_flag("fused", fused)
        self.max_grad_norm = max_grad_norm
        self.fused = fused
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, bias_correction=bias_correction, clamp_value=clamp_value,
                        trust_clip=trust_clip, use_trust_ratio=use_trust_ratio, grad_averaging=grad_averaging)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(name, group[name])
        check_betas(group["betas"])
        check_optional_positive("clamp_value", group["clamp_value"], "no clamp")
        for name in ("bias_correction", "trust_clip", "use_trust_ratio", "grad_averaging"):
            check_flag(name, group[name])

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}

    def direction(self, grad: Any, weight: Any, m: Any, v: Any, group: dict[str, Any], *, step: int,
                  grad_scale: float = 1.0, out: Any, scratch: Any) -> Any:
        """Everything before the ratio: update m and v, write u = m̂/(√v̂ + eps) + weight_decay·w into ``out``.

        ``step`` is t after this step (1 at the first); g = grad_scale·grad (the global-norm clip);
        ``scratch`` is a temporary of the weight's shape. Works on any slice of a layer (element by element).
        """
        beta1, beta2 = group["betas"]
        u = scale_by_adam(grad, m, v, step=step, beta1=beta1, beta2=beta2, eps=group["eps"],
                          bias_correction=group["bias_correction"], grad_scale=grad_scale,
                          grad_averaging=group["grad_averaging"], out=out)
        return add_decayed_weights(u, weight, group["weight_decay"], out=u, scratch=scratch)  # decoupled: u + λ·w

    def trust_ratio(self, group: dict[str, Any], weight_norm: float, update_norm: float) -> TrustRatio:
        """φ(‖w‖)/‖u‖ of a whole layer from its two norms (``functional.trust_ratio`` with the group's clamp and clip).

        Returns what ``state`` records: ``TrustRatio(weight_norm, ratio_denominator=‖u‖, trust_ratio)``.
        """
        return measure_trust_ratio(weight_norm, update_norm, clamp_value=group["clamp_value"],
                                   trust_clip=group["trust_clip"])

    def step_size(self, group: dict[str, Any], trust_ratio: float) -> float:
        """lr·trust_ratio: how far along u the step goes (lr alone with ``use_trust_ratio=False``)."""
        return group["lr"] * (trust_ratio if group["use_trust_ratio"] else 1.0)

    def apply(self, weight: Any, update: Any, group: dict[str, Any], trust_ratio: float) -> None:
        """w ← w − lr·trust_ratio·u in place (``step_size``); ``update`` is overwritten."""
        apply_updates(weight, scale(update, -self.step_size(group, trust_ratio), out=update))

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        w = p.data
        state["step"] += 1
        u = self.direction(grad, w, state["m"], state["v"], group, step=state["step"], grad_scale=grad_scale,
                           out=self._scratch(w), scratch=self._scratch(w, 1))
        measured = self.trust_ratio(group, norm(w), norm(u))  # recorded even when the step uses 1
        state.update(measured._asdict())
        self.apply(w, u, group, measured.trust_ratio)

    def fused_update(self, visits: list[Visit], grad_scale: float) -> list[Visit]:
        """``optim.fused.lamb``: the same steps, blocked and threaded (or CUDA); returns the visits it cannot take."""
        return fused.lamb(visits, grad_scale)
