"""optim.LAMB2019 (pytorch-lamb at ff2245e, the rule the article ran) against a float64 reference of its equations.

The reference is written here from the equations of the May 2019 code, one step at a time, and
shares no code with ``lamb_edu.optim``.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, optim
from tests.reference import reference_lamb2019

SHAPES = [(6,), (5, 4), (3, 2, 4), (4, 3)]  # the last parameter starts at zero
STEPS = 20


def make_problem(seed: int, steps: int = STEPS, weight_scale: float = 1.0):
    """Initial weights (the last one zero) and per-step gradients, all exactly representable in float32."""
    rng = np.random.default_rng(seed)
    weights = [(weight_scale * rng.normal(size=shape)).astype(np.float32).astype(np.float64) for shape in SHAPES]
    weights[-1][...] = 0.0
    grads = [[(rng.normal(size=shape) * rng.uniform(0.1, 2.0)).astype(np.float32).astype(np.float64)
              for shape in SHAPES] for _ in range(steps)]
    return weights, grads


def run(make_optimizer, weights, grads, dtype, on_step=None):
    params = [Tensor(backend.asarray(np.array(x, dtype=dtype)), requires_grad=True) for x in weights]
    optimizer = make_optimizer(params)
    for t, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = backend.asarray(g, dtype=dtype)
        optimizer.step()
        if on_step is not None:
            on_step(t, optimizer, params)
    return [backend.to_numpy(p.data).astype(np.float64) for p in params], optimizer, params


TOLERANCE = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}

CASES = [
    dict(),
    dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.01),
    dict(lr=0.1, betas=(0.9, 0.99), weight_decay=0.01, adam=True),
    dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", CASES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_lamb2019_matches_the_reference_step_by_step(settings, dtype):
    weights, grads = make_problem(0)
    expected_w, expected_records = reference_lamb2019(weights, grads, **settings)

    def check_records(t, optimizer, params):
        for p, (r, r1, r2) in zip(params, expected_records[t]):
            state = optimizer.state[p]
            assert all(isinstance(state[key], float) for key in ("r", "r1", "r2"))
            np.testing.assert_allclose([state["r"], state["r1"], state["r2"]], [r, r1, r2], **TOLERANCE[dtype])
            np.testing.assert_allclose(state["trust_ratio"], r, **TOLERANCE[dtype])
            np.testing.assert_allclose([state["weight_norm"], state["ratio_denominator"]],
                                       [r1 * np.sqrt(p.data.size), r2 * np.sqrt(p.data.size)], **TOLERANCE[dtype])

    final, optimizer, params = run(lambda p: optim.LAMB2019(p, **settings), weights, grads, dtype, check_records)
    assert all(not np.array_equal(w, f) for w, f in zip(weights, final))
    for index, (got, want) in enumerate(zip(final, expected_w)):
        np.testing.assert_allclose(got, want, err_msg=f"parameter {index}", **TOLERANCE[dtype])
    assert all(p.dtype == dtype for p in params)


def test_the_ratio_is_clamped_at_10_and_is_1_for_a_zero_weight():
    weights, grads = make_problem(1, steps=3, weight_scale=100.0)  # RMS(w) about 100, RMS(adam_step) about 1-3
    firsts = []
    final, optimizer, params = run(lambda p: optim.LAMB2019(p, lr=0.01), weights, grads, np.float64,
                                   lambda t, o, ps: firsts.append([dict(o.state[p]) for p in ps]) if t == 0 else None)
    states = [optimizer.state[p] for p in params]
    assert all(state["r"] == 10.0 and state["r1"] / state["r2"] > 10.0 for state in states[:-1])
    assert firsts[0][-1]["r1"] == 0.0 and firsts[0][-1]["r"] == 1.0  # the zero weight's first step
    expected, _ = reference_lamb2019(weights, grads, lr=0.01)
    for got, want in zip(final, expected):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_r1_and_r2_are_root_mean_squares_so_r1_does_not_grow_with_the_layer_size():
    # two layers drawn from the same distribution, 10 and 1000 weights: same RMS, norms √100 apart
    rng = np.random.default_rng(2)
    weights = [rng.normal(size=10), rng.normal(size=1000)]
    grads = [[rng.normal(size=10), rng.normal(size=1000)]]
    _, optimizer, params = run(lambda p: optim.LAMB2019(p), weights, grads, np.float64)
    small, large = (optimizer.state[p] for p in params)
    assert abs(small["r1"] / large["r1"] - 1) < 0.5
    assert abs(small["weight_norm"] / large["weight_norm"] - 0.1) < 0.05
    for state, w in zip((small, large), weights):
        np.testing.assert_allclose(state["r1"], np.sqrt(np.mean(w**2)), rtol=1e-12)


@pytest.mark.parametrize("eps, rtol", [(0.0, 1e-10), (1e-8, 1e-4)])
def test_adam_mode_is_adam_with_l2_weight_decay(eps, rtol):
    # Equal to optim.Adam up to where eps sits: eps/√(1 − β2ᵗ) here, eps in optim.Adam (exact when eps = 0).
    weights, grads = make_problem(3)
    settings = dict(lr=0.01, betas=(0.9, 0.99), eps=eps, weight_decay=0.01)
    mode, _, _ = run(lambda p: optim.LAMB2019(p, adam=True, **settings), weights, grads, np.float64)
    adam, _, _ = run(lambda p: optim.Adam(p, **settings), weights, grads, np.float64)
    for got, want in zip(mode, adam):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2)


def test_the_callers_gradient_is_not_changed_by_weight_decay():
    weights, grads = make_problem(4, steps=1)
    params = [Tensor(backend.asarray(w.copy()), requires_grad=True) for w in weights]
    for p, g in zip(params, grads[0]):
        p.grad = backend.asarray(g.copy())
    optim.LAMB2019(params, lr=0.01, weight_decay=0.1).step()
    for p, g in zip(params, grads[0]):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), g)


def test_state_dict_round_trip_continues_identically():
    weights, grads = make_problem(5, steps=6)
    first, optimizer, params = run(lambda p: optim.LAMB2019(p, lr=0.01, weight_decay=0.01), weights, grads[:3],
                                   np.float64)
    resumed, _, _ = run(lambda p: _loaded(p, optimizer.state_dict()), first, grads[3:], np.float64)
    straight, _, _ = run(lambda p: optim.LAMB2019(p, lr=0.01, weight_decay=0.01), weights, grads, np.float64)
    for got, want in zip(resumed, straight):
        np.testing.assert_array_equal(got, want)


def _loaded(params, state_dict):
    optimizer = optim.LAMB2019(params, lr=0.01, weight_decay=0.01)
    optimizer.load_state_dict(state_dict)
    return optimizer


@pytest.mark.parametrize("settings, name", [
    (dict(adam="yes"), "adam"), (dict(lr=-1.0), "lr"), (dict(betas=(0.9, 1.0)), "beta"),
    (dict(weight_decay=-0.1), "weight_decay"),
])
def test_bad_settings_are_refused_by_name(settings, name):
    with pytest.raises(ValueError, match=name):
        optim.LAMB2019([Tensor(np.ones(3, dtype=np.float32), requires_grad=True)], **settings)
