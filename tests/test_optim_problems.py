"""Every optimizer makes progress on small problems; LAMB and LARS adapt the step to each layer."""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, optim

OPTIMIZERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.05),
    "SGD-momentum": lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
    "SGD-nesterov": lambda p: optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True),
    "Adagrad": lambda p: optim.Adagrad(p, lr=0.5),
    "RMSprop": lambda p: optim.RMSprop(p, lr=0.03),
    "Adam": lambda p: optim.Adam(p, lr=0.05),
    "AdamW": lambda p: optim.AdamW(p, lr=0.05),
    "LARS": lambda p: optim.LARS(p, lr=1.0, trust_coefficient=0.02, momentum=0.5),
    "LAMB": lambda p: optim.LAMB(p, lr=0.02),
    "Lookahead": lambda p: optim.Lookahead(optim.Adam(p, lr=0.05), k=5, alpha=0.5),
}


def minimise(make_optimizer, curvatures, targets, starts, steps):
    """Minimise Σ_layers ½·Σ curvature·(w − target)² with the autograd; return (first, last) loss."""
    params = [Tensor(backend.asarray(s, dtype=np.float32), requires_grad=True) for s in starts]
    optimizer = make_optimizer(params)

    def closure():
        optimizer.zero_grad()
        loss = sum(((p - t) * (p - t) * c).sum() * 0.5 for p, c, t in zip(params, curvatures, targets))
        loss.backward()
        return loss.item()

    losses = [optimizer.step(closure) for _ in range(steps)]
    return losses[0], closure()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_reduces_a_convex_quadratic(name):
    rng = np.random.default_rng(0)
    shapes = [(8, 5), (5,)]
    curvatures = [rng.uniform(1.0, 10.0, size=s).astype(np.float32) for s in shapes]
    targets = [rng.normal(size=s).astype(np.float32) for s in shapes]
    starts = [t + rng.normal(scale=2.0, size=t.shape) for t in targets]
    first, last = minimise(OPTIMIZERS[name], curvatures, targets, starts, steps=150)
    assert last < 0.05 * first, f"{name}: loss {first:.4g} -> {last:.4g}"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_reduces_a_badly_scaled_two_layer_problem(name):
    """One "layer" has weights of norm ~30 and curvature 0.01, the other norm ~0.1 and curvature 5."""
    rng = np.random.default_rng(1)
    shapes = [(10, 10), (10,)]
    curvatures = [np.full(shapes[0], 0.01, dtype=np.float32), np.full(shapes[1], 5.0, dtype=np.float32)]
    targets = [rng.normal(scale=3.0, size=shapes[0]), rng.normal(scale=0.03, size=shapes[1])]
    starts = [t + rng.normal(scale=s, size=t.shape) for t, s in zip(targets, (3.0, 0.03))]
    first, last = minimise(OPTIMIZERS[name], curvatures, targets, starts, steps=150)
    # plain SGD's lr is capped by the stiff layer, so the flat one barely moves: progress, but slow;
    # the per-coordinate (Adam family) and per-layer (LARS, LAMB) methods rescale and get far further
    assert last < (0.9 if name.startswith("SGD") else 0.2) * first, f"{name}: loss {first:.4g} -> {last:.4g}"


def layers_with_very_different_scales():
    rng = np.random.default_rng(2)
    shapes = [(20, 10), (10, 5), (30,)]
    weight_norms, grad_scales = [0.1, 1.0, 5.0], [1e-3, 1.0, 1e3]
    weights = [rng.normal(size=s) for s in shapes]
    weights = [w * n / np.linalg.norm(w) for w, n in zip(weights, weight_norms)]
    grads = [rng.normal(scale=scale, size=s) for s, scale in zip(shapes, grad_scales)]
    return weights, grads


def relative_steps(optimizer_class, **settings):
    """‖Δw‖/‖w‖ of each layer after one step (float64 parameters)."""
    weights, grads = layers_with_very_different_scales()
    params = [Tensor(w.copy(), requires_grad=True) for w in weights]
    for p, g in zip(params, grads):
        p.grad = g
    optimizer_class(params, **settings).step()
    return np.array([np.linalg.norm(p.data - w) / np.linalg.norm(w) for p, w in zip(params, weights)])


def test_lamb_and_lars_steps_are_proportional_to_each_layers_weight_norm():
    # LAMB: ‖Δw‖ = lr·trust_ratio·‖u‖ = lr·‖w‖ for every layer, whatever its gradient scale
    np.testing.assert_allclose(relative_steps(optim.LAMB, lr=0.01), 0.01, rtol=1e-12)
    np.testing.assert_allclose(relative_steps(optim.LAMB, lr=0.01, weight_decay=0.1), 0.01, rtol=1e-12)
    # LARS: ‖Δw‖ = lr·trust_coefficient·‖w‖·‖g‖/(‖g‖ + eps) at the first step
    np.testing.assert_allclose(relative_steps(optim.LARS, lr=0.5, trust_coefficient=0.02), 0.01, rtol=1e-5)
    # without the trust ratio the relative steps differ by orders of magnitude
    for ratios in (relative_steps(optim.SGD, lr=1e-4), relative_steps(optim.Adam, lr=1e-3),
                   relative_steps(optim.LAMB, lr=0.01, use_trust_ratio=False)):
        assert ratios.max() / ratios.min() > 10
