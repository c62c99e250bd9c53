"""The host side of the GPU path, on the CPU: nothing crosses to the host inside a step uncounted.

The stand-in backend of ``tests/refusing_backend.py`` plays CuPy: its arrays raise TypeError when
NumPy is handed them and count every wait for the device, and its kernels are NumPy emulations of
``optim.fused.cuda``. Every optimizer steps on it, fused and readable, and must give the NumPy
backend's numbers; the waits per step are exactly the documented ones; checkpoints, ``to_numpy`` and
a short training run work on it.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

from lamb_edu import Tensor, backend, nn, optim
from tests import refusing_backend
from tests.refusing_backend import WAITS, DeviceArray, FakeCupy

pytestmark = pytest.mark.skipif(backend.is_gpu(), reason="replaces the backend with a stand-in GPU")


@pytest.fixture
def on_fake_gpu(monkeypatch):
    monkeypatch.setattr(backend, "_active", FakeCupy())
    monkeypatch.setattr(refusing_backend.RawModule, "compiled", [])
    monkeypatch.setattr("lamb_edu.optim.fused.cuda._modules", {})
    monkeypatch.setattr("lamb_edu.optim.fused.cuda._buffers", {})
    WAITS.clear()
    yield
    WAITS.clear()


def test_device_arrays_refuse_numpy_and_count_waits(on_fake_gpu):
    x = backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert isinstance(x, DeviceArray) and backend.is_gpu()
    for implicit in (lambda: np.asarray(x), lambda: np.add(x, 1), lambda: x + np.ones(3, np.float32),
                     lambda: np.sum(x)):
        with pytest.raises(TypeError):
            implicit()
    assert WAITS == []
    assert float((x * x).sum()) == 55.0 and backend.to_numpy(x).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert [wait.split(": ")[-1] for wait in WAITS] == ["float", "get"]


OPTIMIZERS = {
    "SGD": lambda params, fused: optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "Adagrad": lambda params, fused: optim.Adagrad(params, lr=0.1),
    "RMSprop": lambda params, fused: optim.RMSprop(params, lr=1e-2),
    "Adam": lambda params, fused: optim.Adam(params, lr=1e-2, weight_decay=1e-3, fused=fused),
    "AdamW": lambda params, fused: optim.AdamW(params, lr=1e-2, weight_decay=0.1, fused=fused),
    "LARS": lambda params, fused: optim.LARS(params, lr=0.1, weight_decay=1e-3),
    "LAMB": lambda params, fused: optim.LAMB(params, lr=1e-2, weight_decay=0.01, fused=fused),
    "LAMB clipped": lambda params, fused: optim.LAMB(params, lr=1e-2, max_grad_norm=0.5, trust_clip=True,
                                                     clamp_value=None, fused=fused),
    "Lookahead(LAMB)": lambda params, fused: optim.Lookahead(optim.LAMB(params, lr=1e-2, fused=fused), k=2),
}
TENSORS = 4  # MLP([6, 16, 3]): two weights and two biases


def expected_waits(name: str, fused: bool) -> int:
    """The waits one step may make: the gradient check (one for all tensors), then the rule's own."""
    if name.startswith("LAMB") or name.startswith("Lookahead"):
        rule = 1 if fused else 2 * TENSORS  # fused: the norms of all tensors in one copy; readable: ‖w‖, ‖u‖ each
    else:
        rule = 2 * TENSORS if name == "LARS" else 0  # LARS's ‖w‖ and ‖g‖ per tensor
    clip = TENSORS if name == "LAMB clipped" else 0  # the global norm adds up each tensor's ‖g‖
    return 1 + clip + rule


def run(name: str, fused: bool, steps: int = 3):
    """``steps`` steps of the optimizer on a seeded MLP; the final weights, the state and the waits per step."""
    rng = np.random.default_rng(0)
    model = nn.MLP([6, 16, 3], seed=0)
    optimizer = OPTIMIZERS[name](model.parameters(), fused)
    x, y = backend.asarray(rng.normal(size=(8, 6)).astype(np.float32)), rng.integers(0, 3, size=8)
    waits = []
    for _ in range(steps):
        optimizer.zero_grad()
        nn.cross_entropy(model(Tensor(x)), y).backward()
        WAITS.clear()
        optimizer.step()
        waits.append(list(WAITS))
    return [backend.to_numpy(p.data) for p in model.parameters()], optimizer, waits


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_steps_on_the_device_with_only_the_documented_waits(monkeypatch, name, fused):
    expected, _, _ = run(name, fused)  # the NumPy backend
    monkeypatch.setattr(backend, "_active", FakeCupy())
    monkeypatch.setattr("lamb_edu.optim.fused.cuda._modules", {})
    weights, optimizer, waits = run(name, fused)
    for actual, reference in zip(weights, expected):
        np.testing.assert_allclose(actual, reference, rtol=2e-5, atol=2e-6)
    for step_waits in waits:
        assert len(step_waits) == expected_waits(name, fused), step_waits
        assert not any("optim/fused/" in wait and not wait.startswith("optim/fused/__init__.py:lamb:")
                       for wait in step_waits), step_waits
    state = optimizer.state_dict()["state"]
    for entry in state.values():
        for key, value in entry.items():
            assert not isinstance(value, DeviceArray), key  # checkpoints hold host arrays and floats
            if key in optim.functional.TRUST_KEYS:
                assert isinstance(value, float)


def test_the_fused_kernels_are_the_compiled_sources(on_fake_gpu):
    from lamb_edu.optim.fused import cuda

    run("LAMB", True, steps=1)
    run("Adam", True, steps=1)
    assert refusing_backend.RawModule.compiled == [cuda.source("float32")]  # compiled once, this text


def test_checkpoint_round_trip_on_the_device(on_fake_gpu, tmp_path):
    weights, optimizer, _ = run("LAMB", True, steps=2)
    flat = optim.flatten_state_dict(optimizer.state_dict())
    assert all(isinstance(array, np.ndarray) for array in flat.values())
    np.savez(tmp_path / "state.npz", **flat)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as loaded:
        restored = optim.unflatten_state_dict(dict(loaded))
    model = nn.MLP([6, 16, 3], seed=1)
    again = optim.LAMB(model.parameters(), lr=1e-2, weight_decay=0.01)
    again.load_state_dict(restored)
    for p, q in zip(optimizer.state, again.state):
        for key in ("m", "v"):
            assert isinstance(again.state[q][key], DeviceArray)  # loaded back onto the device
            np.testing.assert_array_equal(backend.to_numpy(again.state[q][key]),
                                          backend.to_numpy(optimizer.state[p][key]))


def test_a_short_training_run_on_the_device(on_fake_gpu):
    from lamb_edu.data import MNIST
    from lamb_edu.train import fit

    rng = np.random.default_rng(3)
    data = MNIST(rng.integers(0, 256, size=(96, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=96),
                 rng.integers(0, 256, size=(32, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=32))
    model = nn.MLP([784, 32, 10], seed=0)
    history = fit(model, optim.LAMB(model.parameters(), lr=1e-2), data, epochs=2, batch_size=32, log_every=2,
                  progress=False)
    assert history.diverged is None and len(history.step_loss) == 6
    steps, logged, evaluations = 6, 3 + 2, 2  # log_every=2 logs steps 2, 4, 6 and each epoch's end
    where = Counter(wait.rsplit(": ", 1)[0] for wait in WAITS)
    # every step: the gradient check, LAMB's norms in one copy, the targets' range check, the loss
    assert where["optim/checks.py:all_finite_together"] == steps
    assert where["optim/fused/__init__.py:lamb"] == steps
    assert where["nn/losses.py:cross_entropy"] == steps + evaluations
    assert where["autograd/tensor.py:item"] == steps + evaluations
    # the rest belongs to logging (norms, divergence checks) and evaluation, not to the steps
    rest = sum(where.values()) - 4 * steps - 2 * evaluations
    assert rest <= 4 * logged, where


def test_cupy_present_without_a_gpu_is_a_clear_error(monkeypatch):
    class NoDevice:
        class cuda:  # noqa: N801
            class runtime:  # noqa: N801
                @staticmethod
                def getDeviceCount():
                    raise RuntimeError("cudaErrorInsufficientDriver")

    monkeypatch.setitem(sys.modules, "cupy", NoDevice)
    with pytest.raises(backend.BackendUnavailableError, match="no usable GPU.*pip install cupy-cuda12x"):
        backend.use("cupy")
    monkeypatch.setitem(sys.modules, "cupy", None)  # not installed: import fails
    with pytest.raises(backend.BackendUnavailableError, match="not installed.*pip install cupy-cuda12x"):
        backend.use("cupy")
    assert backend.name() == "numpy"
