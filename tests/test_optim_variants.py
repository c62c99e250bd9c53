"""The misquoted optimizers of ``optim.variants``: each follows its own (wrong) formula, and shows its defect.

Every variant is checked step by step against a float64 NumPy reference of the formula its docstring
states, written here. The scale checks then show what each one breaks: multiplying the loss by 10,
or a layer's weights by 10 (with the gradient of a layer followed by a normalisation, g/10), should
leave LAMB's step the same, or make it 10× larger, and does so only for the rules that keep the
paper's invariances.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, optim
from lamb_edu.optim import variants

BETA1, BETA2 = 0.9, 0.999
W0 = np.array([0.3, -0.2, 0.1, 0.4])
GRADS = [np.array([0.5, -1.0, 0.25, 2.0]), np.array([0.4, -0.6, -0.3, 1.5]), np.array([-0.2, -0.8, 0.1, 1.0])]


def run(cls, weight, grads, **settings):
    """The weights after stepping ``cls`` on a float64 copy of ``weight`` with each gradient in turn."""
    p = Tensor(np.array(weight, dtype=np.float64), requires_grad=True)
    optimizer = cls([p], **settings)
    for grad in grads:
        p.grad = np.array(grad, dtype=np.float64)
        optimizer.step()
    return p.data.copy(), optimizer.state[p]


def adam_reference(weight, grads, lr, eps, weight_decay, ratio_rule, bias_correction=True, clamp=10.0, prescale=None):
    """float64 LAMB-family reference: Adam's moments, then ``ratio_rule`` picks the trust ratio."""
    w, m, v = np.array(weight, dtype=np.float64), np.zeros_like(weight), np.zeros_like(weight)
    for t, g in enumerate(grads, start=1):
        if prescale is not None:  # the ratio put on the gradient before Adam
            g = prescale(w, g) * g
        m = BETA1 * m + (1 - BETA1) * g
        v = BETA2 * v + (1 - BETA2) * g * g
        c1, c2 = (1 - BETA1**t, 1 - BETA2**t) if bias_correction else (1.0, 1.0)
        m_hat, v_hat = m / c1, v / c2
        adam = m_hat / (np.sqrt(v_hat) + eps)
        u = adam + weight_decay * w
        phi = min(np.linalg.norm(w), clamp)
        r = ratio_rule(phi, m_hat, adam, u, eps)
        w = w - lr * r * u
    return w


PAPER = lambda phi, m_hat, adam, u, eps: phi / np.linalg.norm(u)  # noqa: E731


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_paper_lamb_matches_the_reference(weight_decay):
    w, _ = run(optim.LAMB, W0, GRADS, lr=0.1, weight_decay=weight_decay, fused=False)
    np.testing.assert_allclose(w, adam_reference(W0, GRADS, 0.1, 1e-6, weight_decay, PAPER), rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_first_moment_ratio_follows_its_formula(weight_decay):
    w, state = run(variants.LAMBFirstMomentRatio, W0, GRADS, lr=0.1, weight_decay=weight_decay)
    rule = lambda phi, m_hat, adam, u, eps: phi / np.linalg.norm(m_hat)  # noqa: E731
    np.testing.assert_allclose(w, adam_reference(W0, GRADS, 0.1, 1e-6, weight_decay, rule), rtol=1e-12)
    assert state["trust_ratio"] == pytest.approx(state["weight_norm"] / state["ratio_denominator"])


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_no_decay_in_ratio_follows_its_formula(weight_decay):
    w, _ = run(variants.LAMBNoDecayInRatio, W0, GRADS, lr=0.1, weight_decay=weight_decay)
    rule = lambda phi, m_hat, adam, u, eps: phi / (np.linalg.norm(adam) + eps)  # noqa: E731
    np.testing.assert_allclose(w, adam_reference(W0, GRADS, 0.1, 1e-6, weight_decay, rule), rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_no_bias_correction_follows_its_formula(weight_decay):
    w, _ = run(variants.LAMBNoBiasCorrection, W0, GRADS, lr=0.1, weight_decay=weight_decay)
    np.testing.assert_allclose(w, adam_reference(W0, GRADS, 0.1, 1e-6, weight_decay, PAPER, bias_correction=False),
                               rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_ratio_on_gradient_follows_its_formula(weight_decay):
    w, _ = run(variants.LAMBRatioOnGradient, W0, GRADS, lr=0.1, weight_decay=weight_decay)
    prescale = lambda w, g: min(np.linalg.norm(w), 10.0) / np.linalg.norm(g)  # noqa: E731
    no_ratio = lambda phi, m_hat, adam, u, eps: 1.0  # noqa: E731
    np.testing.assert_allclose(w, adam_reference(W0, GRADS, 0.1, 1e-6, weight_decay, no_ratio, prescale=prescale),
                               rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lars_without_weight_norm_follows_its_formula(weight_decay):
    lr, mu, eta, eps = 0.5, 0.9, 0.02, 1e-8
    w_got, state = run(variants.LARSNoWeightNorm, W0, GRADS, lr=lr, momentum=mu, weight_decay=weight_decay,
                       trust_coefficient=eta, eps=eps)
    w, buffer = W0.copy(), np.zeros(4)
    for g in GRADS:
        local_lr = eta / (np.linalg.norm(g) + weight_decay * np.linalg.norm(w) + eps)
        buffer = mu * buffer + lr * local_lr * (g + weight_decay * w)
        w = w - buffer
    np.testing.assert_allclose(w_got, w, rtol=1e-12)
    assert state["trust_ratio"] == pytest.approx(eta / (np.linalg.norm(GRADS[-1]) + weight_decay
                                                        * np.linalg.norm(w_got + buffer) + eps))


# --- the scale checks ------------------------------------------------------------------------------------

LAMB_FAMILY = {
    "paper LAMB": (optim.LAMB, dict(lr=0.1, eps=1e-12, fused=False)),
    "first moment": (variants.LAMBFirstMomentRatio, dict(lr=0.1, eps=1e-12)),
    "no decay in ratio": (variants.LAMBNoDecayInRatio, dict(lr=0.1, eps=1e-12)),
    "no bias correction": (variants.LAMBNoBiasCorrection, dict(lr=0.1, eps=1e-12)),
    "ratio on gradient": (variants.LAMBRatioOnGradient, dict(lr=0.1, eps=1e-12)),
    "paper LARS": (optim.LARS, dict(lr=0.5, trust_coefficient=0.02, eps=0.0)),
    "LARS without ‖w‖": (variants.LARSNoWeightNorm, dict(lr=0.5, trust_coefficient=0.02, eps=0.0)),
}
KEEPS_LOSS_SCALE = {"paper LAMB", "no decay in ratio", "no bias correction", "ratio on gradient", "paper LARS",
                    "LARS without ‖w‖"}
KEEPS_WEIGHT_SCALE = {"paper LAMB", "no decay in ratio", "no bias correction", "paper LARS"}


def _step(name, weight, grads):
    cls, settings = LAMB_FAMILY[name]
    return run(cls, weight, grads, **settings)[0] - np.asarray(weight)


@pytest.mark.parametrize("name", LAMB_FAMILY)
def test_loss_times_ten(name):
    """Loss × 10 (every gradient × 10): the same step for the rules whose ratio has no gradient units."""
    same = np.allclose(_step(name, W0, [10 * g for g in GRADS]), _step(name, W0, GRADS), rtol=1e-6, atol=0)
    assert same == (name in KEEPS_LOSS_SCALE)


@pytest.mark.parametrize("name", LAMB_FAMILY)
def test_layer_weights_times_ten(name):
    """w × 10 and g / 10 (a layer before a normalisation): a 10× larger step for the layer-wise rules."""
    scaled = _step(name, 10 * W0, [g / 10 for g in GRADS])
    equivariant = np.allclose(scaled, 10 * _step(name, W0, GRADS), rtol=1e-6, atol=0)
    assert equivariant == (name in KEEPS_WEIGHT_SCALE)


def test_first_moment_ratio_steps_scale_with_the_gradient():
    """‖m̂‖ carries the gradient's units: loss × 10 gives a step 10 times smaller, w × 10 one 100 times larger."""
    step = _step("first moment", W0, GRADS[:1])
    np.testing.assert_allclose(_step("first moment", W0, [10 * GRADS[0]]), step / 10, rtol=1e-9)
    np.testing.assert_allclose(_step("first moment", 10 * W0, [GRADS[0] / 10]), 100 * step, rtol=1e-9)


def test_decay_missing_from_the_ratio_breaks_the_step_norm():
    """Paper: ‖step‖ = lr·‖w‖ whatever g. Without λw in the ratio a nearly dead layer is thrown through zero."""
    nearly_dead = [1e-13 * GRADS[0]]  # m̂/(√v̂+ε) ≈ g/ε: tiny beside λw
    paper, _ = run(optim.LAMB, W0, nearly_dead, lr=0.1, weight_decay=0.01, fused=False)
    wrong, _ = run(variants.LAMBNoDecayInRatio, W0, nearly_dead, lr=0.1, weight_decay=0.01)
    np.testing.assert_allclose(np.linalg.norm(paper - W0), 0.1 * np.linalg.norm(W0), rtol=1e-12)
    adam = nearly_dead[0] / (np.abs(nearly_dead[0]) + 1e-6)  # bias-corrected m̂/(√v̂+ε) at t = 1
    ratio = np.linalg.norm(W0) / (np.linalg.norm(adam) + 1e-6)
    np.testing.assert_allclose(wrong, W0 - 0.1 * ratio * (adam + 0.01 * W0), rtol=1e-9)
    assert np.linalg.norm(wrong - W0) > 100 * np.linalg.norm(W0)


def test_ratio_on_gradient_takes_adams_step():
    """Adam's √v̂ divides the factor put on g away: the first step is Adam's plus decay, lr·(m̂/√v̂ + λw)."""
    wrong, _ = run(variants.LAMBRatioOnGradient, W0, GRADS[:1], lr=0.1, weight_decay=0.05, eps=1e-12)
    np.testing.assert_allclose(wrong, W0 - 0.1 * (np.sign(GRADS[0]) + 0.05 * W0), atol=1e-10)
    adamw, _ = run(optim.LAMB, W0, GRADS[:1], lr=0.1, weight_decay=0.05, eps=1e-12, use_trust_ratio=False, fused=False)
    np.testing.assert_allclose(wrong, adamw, atol=1e-10)


def test_no_bias_correction_is_harmless_in_lamb_but_not_in_adam():
    """The trust ratio divides out (1 − β1ᵗ)/√(1 − β2ᵗ); without the ratio the first step is 3.16× too large."""
    paper = _step("paper LAMB", W0, GRADS[:1])
    np.testing.assert_allclose(_step("no bias correction", W0, GRADS[:1]), paper, rtol=1e-9)
    adam, _ = run(optim.LAMB, W0, GRADS[:1], lr=0.1, eps=1e-12, use_trust_ratio=False, fused=False)
    adam_no_bc, _ = run(variants.LAMBNoBiasCorrection, W0, GRADS[:1], lr=0.1, eps=1e-12, use_trust_ratio=False)
    ratio = np.linalg.norm(adam_no_bc - W0) / np.linalg.norm(adam - W0)
    assert ratio == pytest.approx(0.1 / np.sqrt(0.001), rel=1e-9)


def test_every_variant_records_its_ratio_for_fit():
    for cls, _ in variants.VARIANTS.values():
        settings = dict(lr=0.5) if issubclass(cls, optim.LARS) else dict(lr=0.1)
        _, state = run(cls, W0, GRADS[:1], **settings)
        for key in optim.functional.TRUST_KEYS:
            assert np.isfinite(state[key]) and state[key] > 0, (cls.__name__, key)
        assert cls.fused_update is None
