"""What the optimizers refuse before anything changes (issue 23, items 5 and 14).

A finite gradient whose square overflows is refused (item 5).

Adam's v ← β2·v + (1 − β2)·g² turns one float32 g above √(float32 max) ≈ 1.8e19 into v = inf, after
which that weight never moves again (m / (√v + eps) is 0). The optimizers refuse such a gradient
with FloatingPointError, as they refuse NaN, so the training loop records a divergence instead.
Rules that never square g (SGD) still take it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, optim
from lamb_edu.backend import to_numpy
from lamb_edu.optim import schedules

FACTORIES = {
    "Adam": lambda params: optim.Adam(params, lr=0.1),
    "Adam-unfused": lambda params: optim.Adam(params, lr=0.1, fused=False),
    "AdamW": lambda params: optim.AdamW(params, lr=0.1),
    "LAMB": lambda params: optim.LAMB(params, lr=0.1),
    "LAMB-unfused": lambda params: optim.LAMB(params, lr=0.1, fused=False),
    "RMSprop": lambda params: optim.RMSprop(params, lr=0.1),
    "Adagrad": lambda params: optim.Adagrad(params, lr=0.1),
}
FLOAT32_SQUARE_BOUND = math.sqrt(float(np.finfo(np.float32).max))  # 1.8446744e19


def _params(dtype=np.float32) -> list[Tensor]:
    rng = np.random.default_rng(0)
    return [Tensor(rng.normal(size=shape).astype(dtype), requires_grad=True) for shape in ((4, 3), (5,))]


def _grads(dtype=np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=shape).astype(dtype) for shape in ((4, 3), (5,))]


def _step(optimizer, params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = g.copy()
    optimizer.step()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_gradient_whose_square_overflows_is_refused_and_changes_nothing(name):
    params = _params()
    optimizer = FACTORIES[name](params)
    _step(optimizer, params, _grads())
    weights = [to_numpy(p.data).copy() for p in params]
    state = optimizer.state_dict()
    huge = _grads()
    huge[1][2] = 3e20  # finite in float32; its square (9e40) is not
    with pytest.raises(FloatingPointError, match=r"parameter 1 of group 0.*3e\+20.*square overflows float32"):
        _step(optimizer, params, huge)
    for p, before in zip(params, weights):
        np.testing.assert_array_equal(to_numpy(p.data), before)
    for index, entry in state["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(optimizer.state_dict()["state"][index][key], value)
    # and the next good step is exactly the step of an optimizer that never saw the bad gradient
    reference_params = _params()
    reference = FACTORIES[name](reference_params)
    for _ in range(2):
        _step(reference, reference_params, _grads())
    _step(optimizer, params, _grads())
    for p, q in zip(params, reference_params):
        np.testing.assert_array_equal(to_numpy(p.data), to_numpy(q.data))


@pytest.mark.parametrize("name", ["Adam", "LAMB", "LAMB-unfused"])
def test_large_gradients_whose_squares_fit_are_taken_and_keep_v_finite(name):
    """Just under the bound is accepted, even when the sum of squares over the tensor overflows."""
    params = _params()
    optimizer = FACTORIES[name](params)
    grads = _grads()
    grads[0][:] = np.float32(1.8e19)  # 12 squares of 3.2e38: their sum overflows, each one fits
    assert not math.isfinite(float(np.vdot(grads[0], grads[0])))
    _step(optimizer, params, grads)
    v = optimizer.state[params[0]]["v"]
    assert np.isfinite(to_numpy(v)).all() and np.isfinite(to_numpy(params[0].data)).all()
    grads[0][0, 0] = np.nextafter(np.float32(FLOAT32_SQUARE_BOUND), np.float32(np.inf))  # one ulp above: refused
    with pytest.raises(FloatingPointError, match="parameter 0 of group 0"):
        _step(optimizer, params, grads)


def test_sgd_does_not_square_the_gradient_and_takes_it():
    params = _params()
    optimizer = optim.SGD(params, lr=1e-21)
    grads = _grads()
    grads[1][2] = 3e20
    before = to_numpy(params[1].data).copy()
    _step(optimizer, params, grads)
    assert to_numpy(params[1].data)[2] == pytest.approx(before[2] - 0.3, rel=1e-6)


def test_float64_parameters_take_what_float32_cannot_square():
    params = _params(np.float64)
    optimizer = optim.Adam(params, lr=0.1)
    grads = _grads(np.float64)
    grads[1][2] = 3e20  # 9e40 is a float64
    _step(optimizer, params, grads)
    assert np.isfinite(to_numpy(optimizer.state[params[1]]["v"])).all()


def test_nan_is_still_named_as_nan():
    params = _params()
    optimizer = optim.Adam(params)
    grads = _grads()
    grads[0][1, 1] = np.nan
    with pytest.raises(FloatingPointError, match="parameter 0 of group 0.*contains NaN or inf"):
        _step(optimizer, params, grads)


def _malformed(good: dict) -> dict[str, object]:
    group = good["param_groups"][0]
    return {
        "param_groups not a list": {**good, "param_groups": 5},
        "a group without params": {**good, "param_groups": [{k: v for k, v in group.items() if k != "params"}]},
        "a group that is a list": {**good, "param_groups": [[1, 2]]},
        "params not a list": {**good, "param_groups": [{**group, "params": 5}]},
        "state a list": {**good, "state": [1, 2]},
        "a state entry not a dict": {**good, "state": {0: 5}},
    }


@pytest.mark.parametrize("case", sorted(_malformed({"param_groups": [{}], "state": {}})))
def test_a_malformed_optimizer_state_dict_is_a_value_error_and_changes_nothing(case):
    """They raised KeyError or TypeError; load_state_dict documents ValueError."""
    params = _params()
    optimizer = optim.Adam(params, lr=0.1)
    _step(optimizer, params, _grads())
    good = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"state_dict is malformed \((KeyError|TypeError)"):
        optimizer.load_state_dict(_malformed(good)[case])
    with pytest.raises(ValueError):
        optimizer.check_state_dict(_malformed(good)[case])
    after = optimizer.state_dict()
    assert after["param_groups"] == good["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["v"], good["state"][0]["v"])


def test_a_scheduler_state_whose_base_lrs_is_not_a_list_is_a_value_error():
    params = _params()
    scheduler = schedules.LRScheduler(optim.SGD(params, lr=0.1), schedules.LinearWarmup(warmup_steps=10))
    with pytest.raises(ValueError, match="base_lrs must be a list, got 5"):  # was TypeError: 'int' is not iterable
        scheduler.load_state_dict({"base_lrs": 5, "last_step": 1})


def test_lars_takes_a_gradient_whose_squares_overflow_float32_as_lars_should():
    """‖g‖ of a huge finite gradient overflowed the float32 sum of squares: trust ratio 0, a silent skipped step.

    LARS's step is trust_coefficient·‖w‖·g/‖g‖ times lr, whatever ‖g‖ is; the reference is that formula
    in float64 (momentum 0: the first step is the whole story).
    """
    params = _params()
    grads = _grads()
    grads[0] *= np.float32(1e19)  # ‖g‖ ≈ 3e19: its float32 square overflows, each element's does not
    grads[1][2] = np.float32(3e20)  # and one element's square overflows too
    weights = [to_numpy(p.data).astype(np.float64) for p in params]
    optimizer = optim.LARS(params, lr=0.5, momentum=0.0)
    _step(optimizer, params, grads)
    for p, w, g in zip(params, weights, grads):
        g = g.astype(np.float64)
        expected = w - 0.5 * 1e-3 * np.linalg.norm(w) / (np.linalg.norm(g) + 1e-8) * g
        np.testing.assert_allclose(to_numpy(p.data), expected, rtol=1e-6, atol=1e-7)
        assert np.abs(to_numpy(p.data) - w).max() > 1e-5  # a real step, not a skipped one
    assert all(0 < optimizer.state[p]["trust_ratio"] < 1e-20 for p in params)
