"""Learning-rate schedules and batch-size scaling rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, backend, optim
from lamb_edu.optim import schedules


def test_constant_and_linear_warmup():
    assert [schedules.Constant()(s) for s in (0, 1, 1000)] == [1.0, 1.0, 1.0]
    warmup = schedules.LinearWarmup(4)
    assert [warmup(s) for s in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert schedules.LinearWarmup(0)(0) == 1.0


def test_warmup_polynomial_decay():
    schedule = schedules.WarmupPolynomialDecay(warmup_steps=2, total_steps=10, power=2.0, end_factor=0.1)
    expected = {0: 0.5, 1: 1.0, 2: 1.0, 6: 0.1 + 0.9 * 0.5**2, 8: 0.1 + 0.9 * 0.25**2, 10: 0.1, 50: 0.1}
    for step, factor in expected.items():
        assert schedule(step) == pytest.approx(factor, rel=1e-15), step
    linear = schedules.WarmupPolynomialDecay(warmup_steps=0, total_steps=4)
    assert [linear(s) for s in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_warmup_cosine():
    schedule = schedules.WarmupCosine(warmup_steps=3, total_steps=11, end_factor=0.2)
    assert [schedule(s) for s in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert schedule(3) == pytest.approx(1.0)
    assert schedule(7) == pytest.approx(0.2 + 0.8 * 0.5)  # halfway: cos(π/2) = 0
    assert schedule(5) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert schedule(11) == pytest.approx(0.2) and schedule(99) == pytest.approx(0.2)
    values = [schedule(s) for s in range(3, 12)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_scheduler_sets_every_group_lr_and_the_steps_use_it():
    """SGD without momentum moves w by exactly lr_t·g, so the scheduled lr is visible in the weights."""
    p = Tensor(np.zeros(3), requires_grad=True)
    q = Tensor(np.zeros(2), requires_grad=True)
    optimizer = optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    scheduler = schedules.LRScheduler(optimizer, schedules.WarmupCosine(warmup_steps=2, total_steps=6))
    assert scheduler.get_last_lr() == pytest.approx([0.05, 0.25])
    schedule = schedules.WarmupCosine(warmup_steps=2, total_steps=6)
    for step in range(8):
        p.grad, q.grad = np.ones(3), np.ones(2)
        before = p.data.copy(), q.data.copy()
        optimizer.step()
        np.testing.assert_allclose(before[0] - p.data, 0.1 * schedule(step), rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(before[1] - q.data, 0.5 * schedule(step), rtol=1e-14, atol=1e-300)
        scheduler.step()
    assert scheduler.last_step == 8


def test_scheduler_works_through_lookahead_and_accepts_a_plain_function():
    params = [Tensor(np.ones(3, dtype=np.float32), requires_grad=True)]
    inner = optim.Adam(params, lr=0.01)
    scheduler = schedules.LRScheduler(optim.Lookahead(inner, k=2), lambda step: 1.0 / (step + 1))
    scheduler.step()
    scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.01 / 3)


def test_scheduler_state_dict_round_trip():
    optimizer = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.2)
    scheduler = schedules.LRScheduler(optimizer, schedules.LinearWarmup(10))
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    other_optimizer = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.2)
    other = schedules.LRScheduler(other_optimizer, schedules.LinearWarmup(10))
    other.load_state_dict(state)
    assert other.last_step == 3 and other.get_last_lr() == scheduler.get_last_lr() == [pytest.approx(0.2 * 4 / 10)]
    with pytest.raises(ValueError, match="learning rates"):
        other.load_state_dict({"base_lrs": [0.1, 0.2], "last_step": 1})


def test_batch_size_scaling_rules():
    assert schedules.linear_scaling(0.1, 1024, 256) == pytest.approx(0.4)
    assert schedules.sqrt_scaling(0.1, 1024, 256) == pytest.approx(0.2)
    assert schedules.sqrt_scaling(0.1, 64, 256) == pytest.approx(0.05)
    for function in (schedules.linear_scaling, schedules.sqrt_scaling):
        with pytest.raises(ValueError, match="batch_size.*0"):
            function(0.1, 0, 256)
        with pytest.raises(ValueError, match="base_batch_size.*-2"):
            function(0.1, 128, -2)
        with pytest.raises(ValueError, match="lr.*-0.1"):
            function(-0.1, 128, 256)


@pytest.mark.parametrize("make,argument,value", [
    (lambda: schedules.LinearWarmup(-1), "warmup_steps", "-1"),
    (lambda: schedules.LinearWarmup(2.5), "warmup_steps", "2.5"),
    (lambda: schedules.WarmupPolynomialDecay(10, 10), "total_steps", "10"),
    (lambda: schedules.WarmupPolynomialDecay(0, 10, power=0.0), "power", "0.0"),
    (lambda: schedules.WarmupPolynomialDecay(0, 10, end_factor=1.5), "end_factor", "1.5"),
    (lambda: schedules.WarmupCosine(5, 3), "total_steps", "3"),
    (lambda: schedules.WarmupCosine(0, 3, end_factor=-0.1), "end_factor", "-0.1"),
    (lambda: schedules.Constant()(-1), "step", "-1"),
    (lambda: schedules.LRScheduler(optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1), lambda s: -1.0),
     "factor", "-1.0"),
])
def test_bad_schedule_arguments_raise_value_error(make, argument, value):
    with pytest.raises(ValueError, match=f"{argument}.*{value}"):
        make()


def test_schedule_changes_lr_of_a_float32_run_without_promoting_to_float64():
    p = Tensor(backend.asarray(np.ones(4), dtype=np.float32), requires_grad=True)
    optimizer = optim.LAMB([p], lr=0.01)
    scheduler = schedules.LRScheduler(optimizer, schedules.WarmupPolynomialDecay(2, 5))
    for _ in range(5):
        p.grad = backend.asarray(np.ones(4), dtype=np.float32)
        optimizer.step()
        scheduler.step()
    assert p.data.dtype == np.float32 and optimizer.param_groups[0]["lr"] == 0.0
