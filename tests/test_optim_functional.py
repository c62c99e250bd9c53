"""The pieces in optim.functional against the papers' equations, written here in float64 NumPy.

Also: LAMB and LARS share one trust-ratio rule, the CUDA moment update is the same line as the NumPy
one, and a subclass changes one piece by overriding ``update``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from lamb_edu import Tensor, optim
from lamb_edu.optim import functional as F
from lamb_edu.optim.fused import blocked, cuda


def arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


@pytest.mark.parametrize("bias_correction, grad_scale, grad_averaging, amsgrad", [
    (True, 1.0, True, False), (False, 0.5, False, False), (True, 2.0, True, True),
])
def test_scale_by_adam_is_kingma_and_ba_algorithm_1(bias_correction, grad_scale, grad_averaging, amsgrad):
    g, m, v = arrays(0, (4, 3), (4, 3), (4, 3))
    v = np.abs(v)
    v_max = v + 0.5 if amsgrad else None
    beta1, beta2, eps, t = 0.8, 0.95, 1e-3, 3
    g_s = grad_scale * g  # the reference
    m_new = beta1 * m + ((1 - beta1) if grad_averaging else 1.0) * g_s
    v_new = beta2 * v + (1 - beta2) * g_s**2
    v_used = np.maximum(v_max, v_new) if amsgrad else v_new
    m_hat = m_new / (1 - beta1**t) if bias_correction else m_new
    v_hat = v_used / (1 - beta2**t) if bias_correction else v_used
    expected = m_hat / (np.sqrt(v_hat) + eps)
    grad_before, out = g.copy(), np.empty_like(g)
    got = F.scale_by_adam(g, m, v, step=t, beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction,
                          grad_scale=grad_scale, grad_averaging=grad_averaging, v_max=v_max, out=out)
    assert got is out
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    np.testing.assert_allclose(m, m_new, rtol=1e-14)
    np.testing.assert_allclose(v, v_new, rtol=1e-14)
    np.testing.assert_array_equal(g, grad_before)


def test_add_decayed_weights_momentum_scale_and_apply():
    u, w, b = arrays(1, 5, 5, 5)
    u0, w0, b0 = u.copy(), w.copy(), b.copy()
    out = np.empty(5)
    np.testing.assert_allclose(F.add_decayed_weights(u, w, 0.1, out=out), u0 + 0.1 * w0, rtol=1e-15)
    np.testing.assert_array_equal(u, u0)  # the update (a caller's gradient) is not written
    assert F.add_decayed_weights(u, w, 0.0, out=out) is u  # no decay: no pass over memory
    F.add_decayed_weights(u, w, 0.1, out=u, scratch=np.empty(5))
    np.testing.assert_allclose(u, u0 + 0.1 * w0, rtol=1e-15)
    F.momentum(b, u0, 0.9, dampening=0.25, scratch=np.empty(5))
    np.testing.assert_allclose(b, 0.9 * b0 + 0.75 * u0, rtol=1e-15)
    F.apply_updates(w, F.scale(u0, -0.5, out=out))
    np.testing.assert_allclose(w, w0 - 0.5 * u0, rtol=1e-15)


def test_trust_ratio_rule():
    assert F.trust_ratio(3.0, 2.0) == 1.5
    assert F.trust_ratio(30.0, 2.0, clamp_value=10.0) == 5.0  # φ clips ‖w‖
    assert F.trust_ratio(3.0, 2.0, trust_clip=True) == 1.0
    assert F.trust_ratio(0.0, 2.0) == F.trust_ratio(3.0, 0.0) == 1.0  # zero norms give 1
    # LARS: coefficient·‖w‖ / (‖g‖ + λ‖w‖ + eps), and 1 for a zero gradient even when λ‖w‖ > 0
    assert F.trust_ratio(4.0, 2.0, coefficient=0.01, weight_decay=0.5, eps=1.0) == pytest.approx(0.04 / 5.0)
    assert F.trust_ratio(4.0, 0.0, coefficient=0.01, weight_decay=0.5) == 1.0
    # what LAMB and LARS record: ‖w‖, the denominator (‖u‖, or ‖g‖ + λ‖w‖ for LARS, eps left out), the ratio
    assert F.measure_trust_ratio(30.0, 2.0, clamp_value=10.0) == (30.0, 2.0, 5.0)
    measured = F.measure_trust_ratio(4.0, 2.0, coefficient=0.01, weight_decay=0.5, eps=1.0)
    assert measured.ratio_denominator == 4.0 and measured.trust_ratio == pytest.approx(0.04 / 5.0)
    assert F.TRUST_KEYS == ("weight_norm", "ratio_denominator", "trust_ratio") == tuple(measured._asdict())


def test_global_norm_scale_clips_to_max_norm():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    assert F.global_norm_scale(grads, 1.0) == pytest.approx(0.2)
    assert F.global_norm_scale(grads, 10.0) == 1.0 and F.global_norm_scale(grads, None) == 1.0


def test_lamb_and_lars_call_the_one_trust_ratio_rule(monkeypatch):
    calls = []
    rule = F.trust_ratio

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weight_decay", 0.0))
        return rule(*args, **kwargs)

    monkeypatch.setattr(F, "trust_ratio", spy)
    monkeypatch.setattr(blocked, "trust_ratio", spy)
    makers = (lambda p: optim.LAMB(p, fused=False), lambda p: optim.LAMB(p),
              lambda p: optim.LARS(p, lr=0.1, weight_decay=0.3))
    for make in makers:
        p = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
        p.grad = np.full((3, 2), 0.5, dtype=np.float32)
        make([p]).step()
    assert calls == [0.0, 0.0, 0.3]


def test_the_cuda_moment_update_is_the_numpy_one():
    """The kernels hold one moment line, fed ``moment_weights``: same order as ``update_moments``."""
    assert "1 - beta1" not in inspect.getsource(blocked) and "beta3" not in inspect.getsource(blocked)
    m, v, g = (np.float32(x) for x in (0.3, 0.2, -1.5))
    m_weight, v_weight = F.moment_weights(0.9, 0.99, 0.5, True)
    scope = dict(m=m, v=v, g=g, beta1=np.float32(0.9), beta2=np.float32(0.99),
                 m_weight=np.float32(m_weight), v_weight=np.float32(v_weight))
    exec(cuda.MOMENTS_CUDA, {}, scope)  # the CUDA line is also valid Python
    m_array, v_array = np.array([m]), np.array([v])
    F.update_moments(m_array, v_array, np.array([g]), 0.9, 0.99, scratch=np.empty(1, np.float32), grad_scale=0.5)
    assert scope["m"] == m_array[0] and scope["v"] == v_array[0]


class LARSWithGlobalDenominator(optim.LARS):
    """A classroom variant: one piece changed (the ratio divides by ‖g + λw‖ instead of ‖g‖ + λ‖w‖)."""

    def update(self, p, grad, group, state, grad_scale):
        direction = F.add_decayed_weights(grad, p.data, group["weight_decay"], out=self._scratch(p.data))
        ratio = F.trust_ratio(F.norm(p.data), F.norm(direction), coefficient=group["trust_coefficient"],
                              eps=group["eps"])
        state["trust_ratio"] = ratio
        F.momentum(state["momentum_buffer"], F.scale(direction, group["lr"] * ratio, out=direction), group["momentum"])
        p.data -= state["momentum_buffer"]


def test_a_subclass_changes_one_piece():
    w0, g = np.array([3.0, 4.0]), np.array([1.0, 0.0])
    p = Tensor(w0.copy(), requires_grad=True)
    p.grad = g
    optimizer = LARSWithGlobalDenominator([p], lr=1.0, weight_decay=0.5, trust_coefficient=0.1, eps=0.0)
    optimizer.step()
    direction = g + 0.5 * w0
    ratio = 0.1 * 5.0 / np.linalg.norm(direction)
    np.testing.assert_allclose(p.data, w0 - ratio * direction, rtol=1e-15)


def slices_of_a_layer(seed):
    """A float64 layer (weight, gradient) and the three slices a sharded step might hold of it."""
    rng = np.random.default_rng(seed)
    w, g = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    return w, g, [slice(0, 7), slice(7, 19), slice(19, 30)]


def test_lamb_pieces_compose_over_slices_of_a_layer():
    """direction on each slice, the norms from partial sums, apply on each slice: LAMB's own step."""
    w, g, pieces = slices_of_a_layer(20)
    whole = Tensor(w.copy(), requires_grad=True)
    whole.grad = g.copy()
    lamb = optim.LAMB([whole], lr=0.1, weight_decay=0.05, clamp_value=2.0, fused=False)
    lamb.step()
    group, flat_w, flat_g = lamb.param_groups[0], w.reshape(-1).copy(), g.reshape(-1)
    m, v, u, scratch = (np.zeros(30) for _ in range(4))
    for piece in pieces:
        lamb.direction(flat_g[piece], flat_w[piece], m[piece], v[piece], group, step=1, out=u[piece],
                       scratch=scratch[piece])
    weight_squares = sum(float(flat_w[piece] @ flat_w[piece]) for piece in pieces)
    update_squares = sum(float(u[piece] @ u[piece]) for piece in pieces)
    measured = lamb.trust_ratio(group, np.sqrt(weight_squares), np.sqrt(update_squares))
    for piece in pieces:
        lamb.apply(flat_w[piece], u[piece], group, measured.trust_ratio)
    np.testing.assert_allclose(flat_w.reshape(w.shape), whole.data, rtol=1e-14)
    np.testing.assert_allclose(m, lamb.state[whole]["m"].reshape(-1), rtol=1e-15)
    recorded = tuple(lamb.state[whole][key] for key in F.TRUST_KEYS)
    np.testing.assert_allclose(measured, recorded, rtol=1e-13)


def test_lars_pieces_compose_over_slices_of_a_layer():
    """local_lr from the layer's norms, then momentum_step on each slice: LARS's own step (Nesterov too)."""
    w, g, pieces = slices_of_a_layer(21)
    whole = Tensor(w.copy(), requires_grad=True)
    lars = optim.LARS([whole], lr=0.5, weight_decay=0.01, nesterov=True, trust_coefficient=0.02)
    for _ in range(2):
        whole.grad = g.copy()
        lars.step()
    group, flat_w, flat_g = lars.param_groups[0], w.reshape(-1).copy(), g.reshape(-1)
    buffer, out, look_ahead = (np.zeros(30) for _ in range(3))
    for _ in range(2):
        measured = lars.local_lr(group, F.norm(flat_w), F.norm(flat_g))
        for piece in pieces:
            lars.momentum_step(flat_w[piece], flat_g[piece], buffer[piece], group, measured.trust_ratio,
                               out=out[piece], look_ahead=look_ahead[piece])
    np.testing.assert_allclose(flat_w.reshape(w.shape), whole.data, rtol=1e-14)
    assert measured.ratio_denominator == pytest.approx(F.norm(flat_g) + 0.01 * measured.weight_norm, rel=1e-15)
    assert lars.state[whole]["ratio_denominator"] == pytest.approx(measured.ratio_denominator, rel=1e-13)


def test_adam_weight_decay_is_l2_or_decoupled():
    assert F.adam_weight_decay(0.1, 0.01, decoupled=False) == (0.01, 1.0)
    l2, decay_factor = F.adam_weight_decay(0.1, 0.01, decoupled=True)
    assert l2 == 0.0 and decay_factor == pytest.approx(1 - 0.1 * 0.01, rel=1e-15)
