"""The PyTorch LAMBs the benchmarks time lamb-edu against compute ``optim.LAMB``'s numbers.

``benchmarks/torch_lamb.py`` holds the hand-written foreach LAMB of ``bench_vs_torch.py`` and the
way it builds timm's ``Lamb``; if either computed another rule, the speed comparison would compare
different work. Each runs in float64 on the same weights and gradients as ``optim.LAMB(fused=False)``
for several steps, with a zero weight (ratio 1) and a layer whose norm is above the clamp. Skipped
without torch (and the timm tests without timm).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import Tensor, optim

torch = pytest.importorskip("torch")

SHAPES = [(7, 5), (5,), (3, 4, 2), (6,)]
STEPS = 12


def load_torch_lamb():
    """benchmarks/torch_lamb.py as a module (the benchmarks folder is not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "torch_lamb.py"
    spec = importlib.util.spec_from_file_location("torch_lamb", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def problem(seed):
    """Float64 weights (one zero, one of norm about 50, above the clamp of 10) and per-step gradients."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=shape) for shape in SHAPES]
    weights[1][...] = 0.0
    weights[2] *= 10.0
    grads = [[rng.normal(size=shape) * rng.uniform(0.1, 3.0) for shape in SHAPES] for _ in range(STEPS)]
    return weights, grads


def lamb_edu_weights(weights, grads, **settings):
    params = [Tensor(w.copy(), requires_grad=True) for w in weights]
    optimizer = optim.LAMB(params, fused=False, **settings)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        optimizer.step()
    return [p.data for p in params]


def torch_weights(library, weights, grads, **hyper):
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    step = load_torch_lamb().lamb_stepper(library, params, **hyper)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_hand_written_torch_lamb_is_optim_lamb(weight_decay):
    weights, grads = problem(0)
    hyper = dict(lr=0.02, betas=(0.9, 0.999), weight_decay=weight_decay)
    expected = lamb_edu_weights(weights, grads, **hyper)  # clamp_value=10 and eps=1e-6, the defaults of both
    for got, want, start in zip(torch_weights("torch", weights, grads, **hyper), expected, weights):
        assert not np.array_equal(want, start)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.slow  # importing timm takes seconds
def test_timm_lamb_is_optim_lamb_without_the_clamp():
    """timm's Lamb (max_grad_norm=None, as the benchmarks build it) is LAMB with φ the identity."""
    pytest.importorskip("timm")
    weights, grads = problem(1)
    hyper = dict(lr=0.02, betas=(0.9, 0.999), weight_decay=0.01)
    expected = lamb_edu_weights(weights, grads, clamp_value=None, **hyper)
    for got, want in zip(torch_weights("timm", weights, grads, **hyper), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    clamped = lamb_edu_weights(weights, grads, **hyper)
    assert not np.allclose(clamped[2], expected[2])  # the layer of norm 50 is where the clamp differs


def test_the_stepper_refuses_an_unknown_library():
    with pytest.raises(ValueError, match="library"):
        load_torch_lamb().lamb_stepper("jax", [torch.zeros(2, requires_grad=True)], lr=0.1, betas=(0.9, 0.999),
                                       weight_decay=0.0)
