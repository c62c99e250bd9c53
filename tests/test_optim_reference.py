"""Each optimizer against a plain float64 NumPy re-implementation of its equations, step by step.

The references are ``tests/reference.py``, written straight from the papers' equations and sharing
no code with ``lamb_edu.optim``. Each takes the initial weights and the list of per-step gradients
(lists of arrays) and returns the weights after every step has been applied, plus whatever per-step
records the optimizer keeps. Adam, AdamW and LAMB run both their readable step (``fused=False``)
and their fused one (``fused=True``) against the same reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, optim
from tests import reference

SHAPES = [(6,), (5, 4), (3, 2, 4), (4, 3)]  # the last parameter starts at zero
STEPS = 24


def make_problem(seed: int = 0, steps: int = STEPS, shapes=SHAPES):
    """Initial weights and per-step gradients, all exactly representable in float32."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=shape).astype(np.float32).astype(np.float64) for shape in shapes]
    weights[-1][...] = 0.0
    grads = [
        [(rng.normal(size=shape) * rng.uniform(0.1, 2.0)).astype(np.float32).astype(np.float64) for shape in shapes]
        for _ in range(steps)
    ]
    return weights, grads


# ---------------------------------------------------------------------- running the library
def run_optimizer(make_optimizer, weights, grads, dtype):
    """Run ``make_optimizer(params)`` over the gradients; return final weights (float64) and the optimizer."""
    params = [Tensor(backend.asarray(np.array(w, dtype=dtype)), requires_grad=True) for w in weights]
    optimizer = make_optimizer(params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = backend.asarray(g, dtype=dtype)
        optimizer.step()
    return [backend.to_numpy(p.data).astype(np.float64) for p in params], optimizer, params


# float32 runs agree with the float64 reference to float32 rounding; float64 runs agree tightly.
TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


def assert_matches(got, expected, dtype):
    for index, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, err_msg=f"parameter {index}", **TOLERANCE[dtype])


def case_id(settings):
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


def assert_moved(weights, final):
    assert all(not np.array_equal(w, f) for w, f in zip(weights, final)), "a parameter did not move"


def assert_records(optimizer, params, records, dtype):
    """Each parameter's recorded (weight_norm, ratio_denominator, trust_ratio) are floats equal to the reference's."""
    for p, record in zip(params, records):
        got = [optimizer.state[p][key] for key in optim.functional.TRUST_KEYS]
        assert all(isinstance(value, float) for value in got)
        np.testing.assert_allclose(got, record, **TOLERANCE[dtype])


ADAM_CASES = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    dict(lr=0.01, bias_correction=False),
]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "readable"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", ADAM_CASES, ids=case_id)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_and_adamw_match_reference(name, settings, dtype, fused):
    weights, grads = make_problem(2)
    final, optimizer, params = run_optimizer(lambda p: getattr(optim, name)(p, fused=fused, **settings),
                                             weights, grads, dtype)
    expected_settings = dict(settings)
    if name == "AdamW":
        expected_settings.setdefault("weight_decay", 1e-2)  # AdamW's default
    expected = reference.adam(weights, grads, decoupled=(name == "AdamW"), **expected_settings)
    assert_moved(weights, final)
    assert_matches(final, expected, dtype)
    # exactly two state arrays per parameter (three with AMSGrad), in the parameter's dtype
    for p in params:
        arrays = [value for value in optimizer.state[p].values() if hasattr(value, "shape")]
        assert len(arrays) == (3 if settings.get("amsgrad") else 2)
        assert all(a.dtype == dtype and a.shape == p.shape for a in arrays)


LAMB_CASES = [
    dict(),
    dict(lr=0.01, weight_decay=0.01),
    dict(lr=0.01, weight_decay=0.1, bias_correction=False, eps=1e-8),
    dict(lr=0.01, clamp_value=2.0, trust_clip=True),
    dict(lr=0.01, clamp_value=None, grad_averaging=False, betas=(0.7, 0.95)),
    dict(lr=0.01, weight_decay=0.01, use_trust_ratio=False),
    dict(lr=0.01, max_grad_norm=1.0),
]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "readable"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", LAMB_CASES, ids=case_id)
def test_lamb_matches_reference(settings, dtype, fused):
    weights, grads = make_problem(3)
    final, optimizer, params = run_optimizer(lambda p: optim.LAMB(p, fused=fused, **settings), weights, grads, dtype)
    expected, records = reference.lamb(weights, grads, **settings)
    assert_moved(weights, final)
    assert_matches(final, expected, dtype)
    assert_records(optimizer, params, records, dtype)
    for p in params:
        arrays = [value for value in optimizer.state[p].values() if hasattr(value, "shape")]
        assert len(arrays) == 2 and all(a.dtype == dtype and a.shape == p.shape for a in arrays)


def test_lamb_max_grad_norm_leaves_the_callers_gradients_alone():
    weights, grads = make_problem(4, steps=1)
    params = [Tensor(w.copy(), requires_grad=True) for w in weights]
    for p, g in zip(params, grads[0]):
        p.grad = backend.asarray(g.copy())
    optimizer = optim.LAMB(params, lr=0.01, max_grad_norm=0.5)
    optimizer.step()
    for p, g in zip(params, grads[0]):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), g)


@pytest.mark.parametrize("adam", [False, True])
def test_lamb_without_bias_correction_is_the_articles_rule(adam):
    weights, grads = make_problem(5)
    weights[1] *= 5.0  # a weight norm above 10, so the clamp matters
    settings = dict(lr=0.02, weight_decay=0.05)
    final, _, _ = run_optimizer(
        lambda p: optim.LAMB(p, bias_correction=False, use_trust_ratio=not adam, **settings), weights, grads, np.float64
    )
    assert_matches(final, reference.article_lamb(weights, grads, adam=adam, **settings), np.float64)


# ---------------------------------------------------------------------- known cases
def test_adam_first_step_moves_each_coordinate_by_lr_times_sign_of_gradient():
    weights, grads = make_problem(6, steps=1)
    lr = 0.01
    final, _, _ = run_optimizer(lambda p: optim.Adam(p, lr=lr), weights, grads, np.float64)
    for w, f, g in zip(weights, final, grads[0]):
        # m̂ = g and √v̂ = |g| at step 1, so the step is lr·g/(|g| + eps) = lr·sign(g) up to eps
        np.testing.assert_allclose(f - w, -lr * np.sign(g), rtol=0, atol=lr * 1e-8 / np.abs(g).min() + 1e-15)


def test_lamb_trust_ratio_is_one_for_a_zero_weight():
    weights, grads = make_problem(7, steps=1)
    lr = 0.01
    final, optimizer, params = run_optimizer(lambda p: optim.LAMB(p, lr=lr), weights, grads, np.float64)
    zero = params[-1]
    assert optimizer.state[zero]["weight_norm"] == 0.0
    assert optimizer.state[zero]["trust_ratio"] == 1.0
    # with ratio 1 the first step is plain Adam: lr·sign(g) up to eps (LAMB's default eps is 1e-6)
    g = grads[0][-1]
    np.testing.assert_allclose(final[-1], -lr * g / (np.abs(g) + 1e-6), rtol=1e-12)
    np.testing.assert_allclose(final[-1], -lr * np.sign(g), rtol=0, atol=lr * 1e-6 / np.abs(g).min())
    # a non-zero weight moves by exactly lr·‖w‖ (the ratio rescales the update to the weight norm)
    for w, f in zip(weights[:-1], final[:-1]):
        np.testing.assert_allclose(np.linalg.norm(f - w), lr * np.linalg.norm(w), rtol=1e-12)


# ---------------------------------------------------------------------- reductions
def test_lamb_without_trust_ratio_with_bias_correction_and_eps_1e8_is_adamw():
    weights, grads = make_problem(8)
    settings = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    lamb, _, _ = run_optimizer(lambda p: optim.LAMB(p, use_trust_ratio=False, bias_correction=True, **settings),
                               weights, grads, np.float64)
    adamw, _, _ = run_optimizer(lambda p: optim.AdamW(p, **settings), weights, grads, np.float64)
    assert_matches(lamb, adamw, np.float64)


# ---------------------------------------------------------------------- the other optimizers
SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.02, momentum=0.9),
    dict(lr=0.02, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.05),
]
ADAGRAD_CASES = [dict(), dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-6)]
RMSPROP_CASES = [
    dict(),
    dict(lr=0.005, alpha=0.9, weight_decay=0.01, momentum=0.8),
    dict(lr=0.005, centered=True, eps=1e-6),
    dict(lr=0.002, alpha=0.95, centered=True, momentum=0.5, weight_decay=0.1),
]
# (class, its reference, the problem's seed, settings): optimizers that record nothing besides their state
PLAIN_CASES = ([(optim.SGD, reference.sgd, 1, settings) for settings in SGD_CASES]
               + [(optim.Adagrad, reference.adagrad, 10, settings) for settings in ADAGRAD_CASES]
               + [(optim.RMSprop, reference.rmsprop, 11, settings) for settings in RMSPROP_CASES])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, rule, seed, settings", PLAIN_CASES,
                         ids=[f"{case[0].__name__}:{case_id(case[3])}" for case in PLAIN_CASES])
def test_plain_optimizers_match_reference(cls, rule, seed, settings, dtype):
    weights, grads = make_problem(seed)
    final, _, params = run_optimizer(lambda p: cls(p, **settings), weights, grads, dtype)
    assert all(p.dtype == dtype for p in params)
    assert_moved(weights, final)
    assert_matches(final, rule(weights, grads, **settings), dtype)


LARS_CASES = [
    dict(lr=0.5),
    dict(lr=0.5, momentum=0.8, weight_decay=0.01, trust_coefficient=0.02),
    dict(lr=0.5, nesterov=True, weight_decay=0.1, eps=1e-4),
    dict(lr=0.01, momentum=0.0, use_trust_ratio=False, weight_decay=0.01),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", LARS_CASES, ids=case_id)
def test_lars_matches_reference(settings, dtype):
    weights, grads = make_problem(12)
    final, optimizer, params = run_optimizer(lambda p: optim.LARS(p, **settings), weights, grads, dtype)
    expected, records = reference.lars(weights, grads, **settings)
    assert_moved(weights, final)
    assert_matches(final, expected, dtype)
    assert_records(optimizer, params, records, dtype)


def test_lars_zero_weight_and_zero_gradient_get_trust_ratio_one():
    w = [np.zeros(3), np.array([3.0, 4.0])]
    g = [np.array([1.0, -2.0, 2.0]), np.zeros(2)]
    final, optimizer, params = run_optimizer(lambda p: optim.LARS(p, lr=0.1, weight_decay=0.5), w, [g], np.float64)
    assert [optimizer.state[p]["trust_ratio"] for p in params] == [1.0, 1.0]
    np.testing.assert_allclose(final[0], -0.1 * g[0], rtol=1e-15)  # v = lr·1·(g + 0)
    np.testing.assert_allclose(final[1], w[1] - 0.1 * 0.5 * w[1], rtol=1e-15)  # v = lr·1·(0 + wd·w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lookahead_matches_reference(dtype):
    weights, grads = make_problem(13, steps=23)  # 23 steps: the run ends between two synchronisations
    final, _, _ = run_optimizer(lambda p: optim.Lookahead(optim.SGD(p, lr=0.05, momentum=0.9), k=5, alpha=0.3),
                                weights, grads, dtype)
    expected = reference.lookahead(weights, grads, reference.heavy_ball_step(0.05, 0.9), k=5, alpha=0.3)
    assert_moved(weights, final)
    assert_matches(final, expected, dtype)


def test_lookahead_with_alpha_one_is_its_inner_optimizer():
    weights, grads = make_problem(14)
    for dtype in (np.float32, np.float64):
        wrapped, _, _ = run_optimizer(lambda p: optim.Lookahead(optim.Adam(p, lr=0.01), k=3, alpha=1.0),
                                      weights, grads, dtype)
        plain, _, _ = run_optimizer(lambda p: optim.Adam(p, lr=0.01), weights, grads, dtype)
        for a, b in zip(wrapped, plain):
            np.testing.assert_array_equal(a, b)


def test_lars_without_trust_ratio_is_sgd_with_momentum_and_weight_decay():
    weights, grads = make_problem(15)
    settings = dict(lr=0.03, momentum=0.9, weight_decay=0.01)
    lars, _, _ = run_optimizer(lambda p: optim.LARS(p, use_trust_ratio=False, **settings), weights, grads, np.float64)
    sgd, _, _ = run_optimizer(lambda p: optim.SGD(p, **settings), weights, grads, np.float64)
    assert_matches(lars, sgd, np.float64)
    lars, _, _ = run_optimizer(lambda p: optim.LARS(p, use_trust_ratio=False, nesterov=True, **settings),
                               weights, grads, np.float64)
    sgd, _, _ = run_optimizer(lambda p: optim.SGD(p, nesterov=True, **settings), weights, grads, np.float64)
    assert_matches(lars, sgd, np.float64)
