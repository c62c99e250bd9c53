"""Misquoted LAMB and LARS: the wrong formulas students meet in write-ups, as runnable optimizers.

Each class changes one piece of ``optim.LAMB`` (You et al. 2019, Algorithm 2) or ``optim.LARS``
(You, Gitman & Ginsburg 2017, Algorithm 1) and says, in its docstring, the formula, where such a
formula tends to be quoted, and what goes wrong. They are for the classroom (notebook 08, "spot the
misquote"): run one beside the paper's rule and see what it breaks. Every one records
``weight_norm``, ``ratio_denominator`` (whatever its ratio divides by) and ``trust_ratio`` like LAMB
and LARS, so ``train.fit`` logs them.

The paper's LAMB has two scale properties the variants lose in different ways:

- *loss scale*: multiplying the loss by c multiplies g, m̂ by c and v̂ by c², so m̂/(√v̂+ε) and
  hence the step do not change (up to ε);
- *weight scale*: a layer followed by a normalisation has L(c·w) = L(w), so its gradient is g/c
  when its weights are c·w. With no weight decay LAMB's step is then c times larger, the same
  fraction φ(‖w‖)/‖w‖ of the weights (up to the clamp φ and ε); ‖step‖ = lr·φ(‖w‖) always.

Each is a subclass whose ``update`` composes ``optim.functional``'s pieces (``fused_update = None``, so
the fused form never runs the paper's rule in its place).
"""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.optim.functional import (
    TrustRatio,
    add_decayed_weights,
    bias_corrections,
    norm,
    trust_ratio,
)
from lamb_edu.optim.lamb import LAMB
from lamb_edu.optim.lars import LARS

__all__ = [
    "LAMBFirstMomentRatio",
    "LAMBNoDecayInRatio",
    "LAMBNoBiasCorrection",
    "LAMBRatioOnGradient",
    "LARSNoWeightNorm",
    "VARIANTS",
]


def _adam_direction(optimizer: LAMB, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any],
                    grad_scale: float) -> Any:
    """Count the step and return Adam's direction m̂ / (√v̂ + ε) in a scratch array (the moments updated).

    ``LAMB.direction`` without its weight decay: the variants add λ·w where their formula does.
    """
    state["step"] += 1
    return optimizer.direction(grad, p.data, state["m"], state["v"], {**group, "weight_decay": 0.0},
                               step=state["step"], grad_scale=grad_scale, out=optimizer._scratch(p.data),
                               scratch=optimizer._scratch(p.data, 1))


def _step_with_ratio(optimizer: LAMB, p: Tensor, update: Any, group: dict[str, Any], state: dict[str, Any],
                     weight_norm: float, ratio_denominator: float, ratio: float) -> None:
    """Record the ratio, then ``LAMB.apply``: w ← w − lr·ratio·update (ratio 1 with ``use_trust_ratio=False``)."""
    state.update(TrustRatio(weight_norm, ratio_denominator, ratio)._asdict())
    optimizer.apply(p.data, update, group, ratio)


class LAMBFirstMomentRatio(LAMB):
    """LAMB with the first moment in the trust ratio: r = φ(‖w‖) / ‖m̂‖ instead of φ(‖w‖) / ‖u‖.

    The step is w ← w − lr·r·(m̂/(√v̂+ε) + λw). Blog posts and slides that summarise LAMB as "Adam's
    momentum, normalised layer by layer" write the ratio with m̂, the one moment they kept in mind.
    What goes wrong: m̂ has the units of the gradient, u has none. Multiply the loss by 10 and m̂
    grows 10× while u does not, so the step shrinks 10×: the learning rate now depends on the loss
    scale (and on loss scaling in mixed precision). A layer whose gradients are small gets a huge
    ratio, and the step is no longer lr·φ(‖w‖). ``ratio_denominator`` records ‖m̂‖.
    """

    fused_update = None

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        u = _adam_direction(self, p, grad, group, state, grad_scale)
        bias_correction1, _ = bias_corrections(state["step"], *group["betas"], group["bias_correction"])
        first_moment_norm = norm(state["m"]) / bias_correction1  # ‖m̂‖
        add_decayed_weights(u, p.data, group["weight_decay"], out=u, scratch=self._scratch(p.data, 1))
        weight_norm = norm(p.data)
        ratio = trust_ratio(weight_norm, first_moment_norm, clamp_value=group["clamp_value"],
                            trust_clip=group["trust_clip"])
        _step_with_ratio(self, p, u, group, state, weight_norm, first_moment_norm, ratio)


class LAMBNoDecayInRatio(LAMB):
    """LAMB whose trust ratio ignores the weight decay: r = φ(‖w‖) / (‖m̂/(√v̂+ε)‖ + ε).

    The step is still w ← w − lr·r·(m̂/(√v̂+ε) + λw). Tutorials that first derive the ratio for
    Adam and add decoupled weight decay afterwards write it this way. What goes wrong: the step norm
    is lr·φ(‖w‖)·‖m̂/(√v̂+ε) + λw‖ / ‖m̂/(√v̂+ε)‖, no longer lr·φ(‖w‖). When the Adam direction is
    small beside λw (a layer whose gradients vanish, dead ReLUs) the ratio is huge and the decay
    term is multiplied by it: with g = 0 the step is lr·φ(‖w‖)/ε·λw, which throws w through zero
    (‖w‖ = 1, λ = 0.01, ε = 1e-6: 10⁴·lr times w). With λ = 0 it is the paper's rule. ``ratio_denominator``
    records ‖m̂/(√v̂+ε)‖.
    """

    fused_update = None

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        u = _adam_direction(self, p, grad, group, state, grad_scale)
        weight_norm, adam_norm = norm(p.data), norm(u)
        ratio = trust_ratio(weight_norm, adam_norm, eps=group["eps"], clamp_value=group["clamp_value"],
                            trust_clip=group["trust_clip"])
        add_decayed_weights(u, p.data, group["weight_decay"], out=u, scratch=self._scratch(p.data, 1))
        _step_with_ratio(self, p, u, group, state, weight_norm, adam_norm, ratio)


class LAMBNoBiasCorrection(LAMB):
    """LAMB with bias correction dropped: u = m/(√v+ε) + λw, r = φ(‖w‖)/‖u‖ (m and v not divided by 1 − βᵗ).

    The code the article "An intuitive understanding of the LAMB optimizer" runs (and the LAMB
    paper's early versions) has this rule, and write-ups copied from that code quote it. In LAMB the
    trust ratio divides out any common factor of u, so with λ = 0 this is the paper's step (up to
    ε): the harm is smaller than in Adam. What goes wrong: m/√v is m̂/√v̂ times
    (1 − β1ᵗ)/√(1 − β2ᵗ) (3.16 at t = 1 and up to about 6.6 near t = 12 for β = (0.9, 0.999)), so
    the weight decay λw is weaker beside the Adam direction by that factor for thousands of steps,
    and ε acts as ε/√(1 − β2ᵗ), larger early. The same rule without the trust ratio (the article's
    "Adam") takes steps up to 6.6× the intended size. It is ``LAMB(bias_correction=False)``.
    """

    fused_update = None

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        super().update(p, grad, {**group, "bias_correction": False}, state, grad_scale)


class LAMBRatioOnGradient(LAMB):
    """LAMB with the trust ratio applied to the gradient: g̃ = (φ(‖w‖)/‖g‖)·g, then Adam on g̃ plus λw.

    The step is w ← w − lr·(m̂/(√v̂+ε) + λw) with m and v the moments of g̃. Write-ups that
    present LAMB as "LARS's normalisation followed by Adam" (normalise each layer's gradient, then
    feed it to Adam) give this order. What goes wrong: Adam divides every coordinate by its own
    √v̂, which cancels the factor put on the gradient, so the trust ratio has no effect (up to ε):
    this is AdamW. Each weight moves by about lr whatever the layer's norm, and multiplying a
    layer's weights by 10 leaves the step the same instead of 10× larger. ``ratio_denominator`` records
    ‖g‖ and ``trust_ratio`` the factor put on g.
    """

    fused_update = None

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        weight_norm, grad_norm = norm(p.data), grad_scale * norm(grad)
        ratio = trust_ratio(weight_norm, grad_norm, clamp_value=group["clamp_value"], trust_clip=group["trust_clip"])
        used = ratio if group["use_trust_ratio"] else 1.0
        super().update(p, grad, {**group, "use_trust_ratio": False}, state, grad_scale * used)
        state.update(TrustRatio(weight_norm, grad_norm, ratio)._asdict())


class LARSNoWeightNorm(LARS):
    """LARS with ‖w‖ missing from the local learning rate: local_lr = η / (‖g‖ + λ‖w‖ + ε).

    The step is v ← μ·v + lr·local_lr·(g + λw), w ← w − v (η is ``trust_coefficient``). Summaries
    that describe LARS as "dividing the gradient by its norm" drop the numerator. What goes wrong:
    the step is a normalised gradient of size about lr·η whatever the layer's size, so a layer of
    norm 0.1 and one of norm 100 move by the same absolute amount, which is what LARS was built to
    avoid: multiply a layer's weights by 10 and its step stays the same instead of growing 10×.
    ``trust_ratio`` records this local_lr.
    """

    def local_lr(self, group: dict[str, Any], weight_norm: float, grad_norm: float) -> TrustRatio:
        """LARS's piece with ‖w‖ left out of the numerator (and no zero-norm rule): η / (‖g‖ + λ‖w‖ + ε)."""
        measured = super().local_lr(group, weight_norm, grad_norm)
        return measured._replace(trust_ratio=group["trust_coefficient"] / (measured.ratio_denominator + group["eps"]))


# name shown in notebook 08 -> (class, the formula it uses)
VARIANTS: dict[str, tuple[type, str]] = {
    "r = ‖w‖ / ‖m̂‖": (LAMBFirstMomentRatio, "r = φ(‖w‖) / ‖m̂‖"),
    "no λw in the ratio": (LAMBNoDecayInRatio, "r = φ(‖w‖) / (‖m̂/(√v̂+ε)‖ + ε)"),
    "no bias correction": (LAMBNoBiasCorrection, "u = m/(√v+ε) + λw"),
    "ratio on the gradient": (LAMBRatioOnGradient, "Adam on (φ(‖w‖)/‖g‖)·g"),
    "LARS without ‖w‖": (LARSNoWeightNorm, "local_lr = η / (‖g‖ + λ‖w‖)"),
}
