"""The classroom functions: the LAMB step by hand equals optim.LAMB, the slider views draw what they say,
the scale check tells the paper's rules from the misquotes, and ``import lamb_edu`` needs no ipywidgets or mpi4py."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

from lamb_edu import Tensor, classroom, experiments, optim
from lamb_edu.classroom import variants

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent


def test_step_by_hand_numbers_by_calculator():
    """Layer 1: w = (0.6, −0.8), g = (0.3, 0.4), λ = 0.1: at t = 1, m̂ = g, v̂ = g², u ≈ sign(g) + λw."""
    layer1, layer2 = classroom.lamb_step_by_hand(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS,
                                                 **classroom.TOY_SETTINGS)
    np.testing.assert_allclose(layer1.m, [0.03, 0.04])
    np.testing.assert_allclose(layer1.v, [0.00009, 0.00016])
    np.testing.assert_allclose(layer1.m_hat, [0.3, 0.4])
    np.testing.assert_allclose(layer1.u, [1.06, 0.92], atol=1e-5)  # 0.3/(0.3 + 1e-6) = 0.9999967
    assert layer1.weight_norm == pytest.approx(1.0)
    assert layer1.update_norm == pytest.approx(math.sqrt(1.06**2 + 0.92**2), abs=1e-5)
    # layer 2: ‖w‖ = 13 is clamped to 10; u = (−1, 1) + 0.1·(5, 12) = (−0.5, 2.2)
    assert layer2.weight_norm == pytest.approx(13.0) and layer2.clipped_weight_norm == 10.0
    np.testing.assert_allclose(layer2.u, [-0.5, 2.2], atol=1e-5)
    assert layer2.trust_ratio == pytest.approx(10 / math.sqrt(0.25 + 4.84), rel=1e-5)  # ε moves the 6th digit
    np.testing.assert_allclose(np.linalg.norm(layer2.new_w - layer2.w), 0.1 * 10)  # the step is lr·φ(‖w‖)


def test_step_by_hand_equals_the_optimizer():
    by_hand = classroom.lamb_step_by_hand(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS, **classroom.TOY_SETTINGS)
    weights, states = classroom.lamb_step_with_optimizer(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS,
                                                         **classroom.TOY_SETTINGS)
    for layer, weight, state in zip(by_hand, weights, states):
        np.testing.assert_allclose(weight, layer.new_w, rtol=1e-12)
        np.testing.assert_allclose(state["m"], layer.m, rtol=1e-12)
        np.testing.assert_allclose(state["v"], layer.v, rtol=1e-12)
        assert state["trust_ratio"] == pytest.approx(layer.trust_ratio, rel=1e-12)
        assert state["ratio_denominator"] == pytest.approx(layer.update_norm, rel=1e-12)


def test_algorithm_lines_print_every_line_of_algorithm_2():
    lines = classroom.algorithm_lines(classroom.lamb_step_by_hand(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS,
                                                                  **classroom.TOY_SETTINGS))
    assert len(lines) == 2 + 12
    assert lines[-1].startswith("w ← w − η·r·u") and "layer 2" in lines[0]
    assert "[0.03, 0.04]" in next(line for line in lines if line.startswith("m ← "))


def test_debias_view_draws_the_chosen_beta_and_steps():
    figure = classroom.debias_view(beta=0.99, steps=30)
    left, right = figure.axes
    x, y = right.lines[0].get_data()
    assert len(x) == 30 and y[0] == pytest.approx(100.0)  # 1/(1 − 0.99) at t = 1
    debiased = left.lines[1].get_ydata()
    assert len(debiased) == 30
    assert right.get_xscale() == "log"
    with pytest.raises(ValueError, match="steps"):
        classroom.debias_view(steps=0)


def test_uncorrected_ratio_view_draws_the_ratio_of_the_chosen_betas():
    figure = classroom.uncorrected_ratio_view(beta1=0.9, beta2=0.99, steps=100)
    x, y = figure.axes[0].lines[0].get_data()
    assert len(x) == 100 and y[0] == pytest.approx(1.0)  # 0.1 / √0.01 at t = 1
    assert int(x[y.argmax()]) == 13 and y.max() == pytest.approx(2.131, abs=1e-3)  # the peak of (0.9, 0.99)


def test_cost_model_view_draws_the_ring_model_for_the_slider_network():
    figure = classroom.cost_model_view(bandwidth_gbps=100.0, latency_us=5.0, batch=65536, overlap=0.0)
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    workers, efficiency = lines["batch 64K"].get_data()
    assert list(workers) == [8, 16, 32, 64, 128, 256, 512, 1024]
    # by hand at 1024 workers: compute 64 sequences × 6·340M·128 / 50 TFLOP/s; ring 2(p−1)(α + 4P/(pβ))
    compute = 64 * 6 * 340e6 * 128 / 50e12
    ring = 2 * 1023 * (5e-6 + 4 * 340e6 / 1024 / 12.5e9)
    assert efficiency[-1] == pytest.approx(100 * compute / (compute + ring), rel=1e-9)
    faster = classroom.cost_model_view(bandwidth_gbps=400.0, latency_us=5.0, batch=65536, overlap=0.0)
    assert {line.get_label(): line for line in faster.axes[0].lines}["batch 64K"].get_data()[1][-1] > efficiency[-1]


def test_trajectory_view_uses_the_slider_lr():
    figure = classroom.trajectory_view("SGD", lr=0.0, steps=20)
    path = figure.axes[0].lines[0].get_xydata()
    np.testing.assert_allclose(path, np.tile([0.25, 0.25], (21, 1)))  # lr 0: no step
    moved = classroom.trajectory_view("LAMB", lr=0.05, steps=20).axes[0].lines[0].get_xydata()
    assert moved[-1, 0] > 0.25 and moved[-1, 1] > 0.25
    with pytest.raises(ValueError, match="optimizer"):
        classroom.trajectory_view("Lion")


def test_trust_ratio_view_shows_the_clamp():
    """The large layer's ‖w‖ passes 10: with the clamp its step is lr·10, without it lr·‖w‖."""
    run = experiments.lamb_on_vector_layers(clamp_value=10.0, steps=100)
    assert run["weight_norm"][-1, 0] > 10
    lr = 0.05 * (1 - np.arange(100) / 100)
    np.testing.assert_allclose(run["step_norm"][:, 0], lr * np.minimum(run["weight_norm"][:, 0], 10), rtol=1e-9)
    unclamped = experiments.lamb_on_vector_layers(clamp_value=None, steps=100)
    np.testing.assert_allclose(unclamped["step_norm"][:, 0], lr * unclamped["weight_norm"][:, 0], rtol=1e-9)
    figure = classroom.trust_ratio_view(weight_decay=0.01, clamp_value=0)
    assert "clamp None" in figure._suptitle.get_text() and len(figure.axes) == 4


@pytest.mark.parametrize("cls, settings, keeps_loss, keeps_weight", [
    (optim.LAMB, dict(lr=0.1, eps=1e-12, fused=False), True, True),
    (variants.LAMBFirstMomentRatio, dict(lr=0.1, eps=1e-12), False, False),
    (variants.LAMBRatioOnGradient, dict(lr=0.1, eps=1e-12), True, False),
    (variants.LAMBLarsLocalLr, dict(lr=0.1, eps=1e-12), False, False),
    (optim.LARS, dict(lr=1.0, eps=0.0), True, True),
    (variants.LARSNoWeightNorm, dict(lr=1.0, eps=0.0), True, False),
])
def test_scale_check(cls, settings, keeps_loss, keeps_weight):
    check = classroom.scale_check(cls, settings)
    assert (check.keeps_loss_scale, check.keeps_weight_scale) == (keeps_loss, keeps_weight)
    if keeps_weight:
        assert check.weight_scaled_ratio == pytest.approx(10.0, rel=1e-4)


@pytest.mark.parametrize("cls", [optim.LAMB, optim.SGD, optim.LARS])
def test_scale_check_refuses_a_zero_step_instead_of_a_verdict_over_nan_ratios(cls):
    """lr 0 makes every step zero and both ratios 0/0: a ValueError, not "keeps scale"."""
    with pytest.raises(ValueError, match=f"plain step of {cls.__name__} .* norm 0.0: no ratio to compare"):
        classroom.scale_check(cls, dict(lr=0.0))


@pytest.mark.parametrize("factor", [0.0, -10.0, 1.0, math.inf, math.nan, True])
def test_scale_check_refuses_a_factor_that_tests_nothing(factor):
    with pytest.raises(ValueError, match="invalid factor"):
        classroom.scale_check(optim.LAMB, dict(lr=0.1), factor=factor)


@pytest.mark.parametrize("change, message", [
    (dict(clamp_value=-10.0), "invalid clamp_value: -10.0"),
    (dict(clamp_value=0.0), "invalid clamp_value: 0.0"),
    (dict(clamp_value=math.nan), "invalid clamp_value: nan"),
    (dict(lr=-0.1), "invalid lr"),
    (dict(eps=math.inf), "invalid eps"),
    (dict(betas=(0.9, 1.0)), r"invalid betas\[1\]"),
    (dict(step=0), "invalid step: 0"),
    (dict(grads=([0.3, 0.4],)), "grads has 1 layers, weights has 2"),
    (dict(grads=([0.3, 0.4], [0.5])), r"layer 2: the gradient has shape \(1,\)"),
])
def test_step_by_hand_refuses_what_lamb_refuses(change, message):
    arguments = dict(weights=classroom.TOY_WEIGHTS, grads=classroom.TOY_GRADIENTS, **classroom.TOY_SETTINGS)
    with pytest.raises(ValueError, match=message):
        classroom.lamb_step_by_hand(**{**arguments, **change})
    if "clamp_value" in change:  # the optimizer draws the same line
        with pytest.raises(ValueError, match=message):
            optim.LAMB([Tensor([1.0], requires_grad=True)], clamp_value=change["clamp_value"])


def test_step_by_hand_without_a_clamp_uses_the_weight_norm():
    (_, layer2) = classroom.lamb_step_by_hand(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS,
                                              **{**classroom.TOY_SETTINGS, "clamp_value": None})
    assert layer2.clipped_weight_norm == pytest.approx(13.0)


def test_sliders_draw_only_when_a_control_moves():
    pytest.importorskip("ipywidgets")
    drawn = []

    def view(beta: float, steps: int) -> Any:
        drawn.append((beta, steps))
        return classroom.debias_view(beta=beta, steps=steps)

    widget = classroom.sliders(view, beta=(0.5, 0.99, 0.01, 0.9), steps=(1, 200, 1, 50))
    assert [child.description for child in widget.children[:2]] == ["beta", "steps"]
    assert drawn == []  # the notebook draws the default figure itself
    widget.children[1].value = 20
    assert drawn == [(0.9, 20)]


def test_import_needs_neither_ipywidgets_nor_mpi4py():
    code = ("import sys; sys.modules['ipywidgets'] = None; sys.modules['mpi4py'] = None\n"
            "import lamb_edu, lamb_edu.classroom, lamb_edu.classroom.variants, lamb_edu.experiments, lamb_edu.plots\n"
            "assert lamb_edu.classroom.sliders(lambda: None) is None\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
