"""The experiments return the data their figures claim to show.

Each check compares an experiment's returned numbers with an independent float64 computation
written here, or with a property the article states (a debiased average starts at the first data
point; the correction factor at t = 1 is 1/(1 − β)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import experiments


# ------------------------------------------------------------------------------------ 1. debias
@pytest.fixture(scope="module")
def debias_result():
    return experiments.debias(quick=True, seed=3)


def test_debias_series_is_the_noisy_parabola(debias_result):
    r = debias_result
    assert r.data.shape == (200,) and r.x[0] == -4.0 and r.x[-1] == 4.0
    residual = r.data - (1 - (r.x / 3) ** 2)
    assert 0.07 < residual.std() < 0.13  # Gaussian noise of standard deviation 0.1
    assert r.betas == (0.5, 0.7, 0.9, 0.99)


def test_moving_average_matches_the_unrolled_sum(debias_result):
    r = debias_result
    for beta in r.betas:
        t = np.arange(1, r.data.size + 1)
        # m_t = (1 − β) Σ_i β^(t−i) x_i, computed as a matrix of weights
        weights = np.tril((1 - beta) * beta ** (t[:, None] - t[None, :]).astype(float))
        expected = weights @ r.data
        np.testing.assert_allclose(r.average[beta], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.debiased[beta], expected / (1 - beta**t), rtol=1e-9, atol=1e-12)


def test_debiased_average_starts_at_first_data_point(debias_result):
    r = debias_result
    for beta in r.betas:
        assert r.debiased[beta][0] == pytest.approx(r.data[0], rel=1e-12)
        assert r.average[beta][0] == pytest.approx((1 - beta) * r.data[0], rel=1e-12)
    # without correction the β = 0.99 average starts at 1 % of the data: near zero
    assert abs(r.average[0.99][0]) < 0.02 * abs(r.data[0]) + 1e-12
    assert abs(r.data[0]) > 0.3


def test_correction_factor(debias_result):
    r = debias_result
    for beta in r.betas:
        assert r.factor[beta][0] == pytest.approx(1 / (1 - beta))
        assert np.all(np.diff(r.factor[beta]) <= 0) and r.factor[beta][-1] >= 1
        # the first step with 1/(1 − β^t) < 1.01 is the first t with β^t < 1/101
        assert r.steps_to_within(beta) == math.floor(math.log(1 / 101) / math.log(beta)) + 1
    assert r.factor[0.9][0] == pytest.approx(10.0)
    assert r.steps_to_within(0.9) == 44  # "close to 1 after a few dozen steps"


def test_debias_summary_is_plain_numbers(debias_result):
    import json

    summary = json.loads(json.dumps(debias_result.summary()))
    assert summary["betas"]["0.9"]["factor_at_step_1"] == pytest.approx(10.0)
    assert summary["betas"]["0.99"]["first_debiased"] == pytest.approx(summary["first_data_point"])


def test_debias_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        experiments.exponential_moving_average([1.0, 2.0], beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        experiments.bias_correction_factor(-0.1, [1, 2])
    with pytest.raises(ValueError, match="step"):
        experiments.bias_correction_factor(0.9, [0, 1])


def test_quick_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("LAMB_EDU_QUICK", "1")
    assert experiments.quick_mode(default=False) is True
    monkeypatch.setenv("LAMB_EDU_QUICK", "0")
    assert experiments.quick_mode(default=False) is False
    assert experiments.quick_mode(default=True) is True
