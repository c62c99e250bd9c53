"""The CuPy path: fused kernels and a training step on the GPU give the NumPy/float64 numbers.

Skipped without CuPy or without a GPU. References are the float64 equations in tests/reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, nn, optim
from lamb_edu.optim import fused
from tests.reference import adam_step, assert_close_to_float32_rounding, lamb_step

cupy = pytest.importorskip("cupy")
try:
    HAVE_GPU = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # a CuPy without a driver raises CUDARuntimeError here
    HAVE_GPU = False
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason="CuPy is installed but no GPU is usable")]


@pytest.fixture
def on_gpu():
    previous = backend.name()
    backend.use("cupy")
    yield cupy
    backend.use(previous)


@pytest.mark.parametrize("decoupled, weight_decay", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_cupy_adam_kernel_matches_float64_equations(on_gpu, decoupled, weight_decay):
    rng = np.random.default_rng(0)
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=weight_decay, decoupled=decoupled)
    w_host = rng.normal(size=(301, 7)).astype(np.float32)
    w, m, v = cupy.asarray(w_host), cupy.zeros(w_host.shape, np.float32), cupy.zeros(w_host.shape, np.float32)
    w64, m64, v64 = w_host.astype(np.float64), np.zeros(w_host.shape), np.zeros(w_host.shape)
    assert fused.supports(w, w, m, v)
    for t in range(1, 23):
        g = rng.normal(size=w_host.shape).astype(np.float32)
        fused.adam_step(w, cupy.asarray(g), m, v, step=t, **hyper)
        w64, m64, v64, _ = adam_step(w64, g.astype(np.float64), m64, v64, t, **hyper)
    np.testing.assert_allclose(cupy.asnumpy(w), w64, rtol=1e-5, atol=2e-6)
    assert_close_to_float32_rounding(cupy.asnumpy(m), m64)
    assert_close_to_float32_rounding(cupy.asnumpy(v), v64)


@pytest.mark.parametrize("options", [
    dict(weight_decay=0.01), dict(weight_decay=0.1, grad_averaging=False, trust_clip=True),
])
def test_cupy_lamb_kernels_match_float64_equations(on_gpu, options):
    rng = np.random.default_rng(1)
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6, clamp_value=10.0) | options
    w_host = (rng.normal(size=(257, 33)) * 0.1).astype(np.float32)
    w, m, v = cupy.asarray(w_host), cupy.zeros(w_host.shape, np.float32), cupy.zeros(w_host.shape, np.float32)
    w64, m64, v64 = w_host.astype(np.float64), np.zeros(w_host.shape), np.zeros(w_host.shape)
    for t in range(1, 23):
        g = rng.normal(size=w_host.shape).astype(np.float32)
        recorded = fused.lamb_step(w, cupy.asarray(g), m, v, step=t, **hyper)
        w64, m64, v64, expected = lamb_step(w64, g.astype(np.float64), m64, v64, t, **hyper)
        assert all(isinstance(value, float) for value in recorded)
        np.testing.assert_allclose(recorded, expected, rtol=2e-5)
    np.testing.assert_allclose(cupy.asnumpy(w), w64, rtol=1e-5, atol=1e-6)
    assert_close_to_float32_rounding(cupy.asnumpy(m), m64)


@pytest.mark.parametrize("make", [
    lambda params, fast: optim.LAMB(params, lr=1e-2, weight_decay=0.01, fused=fast),
    lambda params, fast: optim.AdamW(params, lr=1e-2, weight_decay=0.1, fused=fast),
])
def test_training_on_cupy_matches_numpy(on_gpu, make):
    """The same seeded run on the GPU (fused kernels, then the readable form) and on the CPU."""
    rng = np.random.default_rng(2)
    x_host = rng.normal(size=(64, 20)).astype(np.float32)
    y_host = rng.integers(0, 5, size=64)
    finals = {}
    for name, fast in (("gpu fused", True), ("gpu readable", False), ("cpu", True)):
        backend.use("numpy" if name == "cpu" else "cupy")
        model = nn.MLP([20, 48, 5], seed=0)
        optimizer = make(model.parameters(), fast)
        x = Tensor(x_host)
        for _ in range(21):
            optimizer.zero_grad()
            loss = nn.cross_entropy(model(x), y_host)
            loss.backward()
            optimizer.step()
        assert backend.is_gpu() == (name != "cpu")
        finals[name] = [backend.to_numpy(p.data) for p in model.parameters()]
    backend.use("cupy")
    for other in ("gpu readable", "cpu"):
        for a, b in zip(finals["gpu fused"], finals[other]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
