"""The fast paths give the numbers of the readable ones: fused autograd operations, fused optimizer steps.

References: the composed autograd operations and finite differences (written here), and the update
rules in plain float64 NumPy (``tests/reference.py``). The fused optimizer steps are driven through
every branch of ``optim.fused`` (several blocks, a partial block, two threads, LAMB's recomputing
second pass) with small block sizes. Also: no memory growth over many steps. (That the state is two
arrays per parameter, m and v, is checked in ``test_optim_reference``.)
"""

from __future__ import annotations

import gc
import math
import threading
import tracemalloc

import numpy as np
import pytest

from lamb_edu import Tensor, backend, host_threads, nn, optim
from lamb_edu.backend import to_numpy
from lamb_edu.nn.functional import linear, softmax_cross_entropy
from lamb_edu.optim import fused
from lamb_edu.optim.fused import blocked
from lamb_edu.optim.fused import threads as fused_threads
from lamb_edu.optim.optimizer import all_finite
from tests.reference import adam_step, assert_close_to_float32_rounding, lamb_step

pytestmark = pytest.mark.skipif(backend.is_gpu(), reason="the NumPy fast paths; tests/test_gpu.py covers CuPy")


# ------------------------------------------------------------------------------ fused autograd
def composed_linear(x, weight, bias):
    out = x @ weight.T
    return out + bias if bias is not None else out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("x_needs_grad", [True, False])
def test_linear_matches_composed_operations(dtype, with_bias, x_needs_grad):
    rng = np.random.default_rng(1)
    values = [rng.normal(size=(7, 5)), rng.normal(size=(3, 5)), rng.normal(size=3), rng.normal(size=(7, 3))]
    results = []
    for operation in (linear, composed_linear):
        x = Tensor(values[0].astype(dtype), requires_grad=x_needs_grad)
        weight = Tensor(values[1].astype(dtype), requires_grad=True)
        bias = Tensor(values[2].astype(dtype), requires_grad=True) if with_bias else None
        out = operation(x, weight, bias)
        (out * Tensor(values[3].astype(dtype))).sum().backward()
        results.append((out, x, weight, bias))
    (fast, x, weight, bias), (slow, x_ref, weight_ref, bias_ref) = results
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    assert fast.dtype == dtype and weight.grad.dtype == dtype
    np.testing.assert_allclose(to_numpy(fast.data), to_numpy(slow.data), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(to_numpy(weight.grad), to_numpy(weight_ref.grad), rtol=tolerance, atol=tolerance)
    assert weight.grad.flags.c_contiguous  # the composed form leaves a transposed view here
    if with_bias:
        np.testing.assert_allclose(to_numpy(bias.grad), to_numpy(bias_ref.grad), rtol=tolerance, atol=tolerance)
    if x_needs_grad:
        np.testing.assert_allclose(to_numpy(x.grad), to_numpy(x_ref.grad), rtol=tolerance, atol=tolerance)
    else:
        assert x.grad is None


def test_linear_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    x0, w0, b0, weights = rng.normal(size=(4, 3)), rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(4, 2))

    def loss(x, w, b):
        return float(((x @ w.T + b) * weights).sum())

    x, w, b = (Tensor(a.copy(), requires_grad=True) for a in (x0, w0, b0))
    (linear(x, w, b) * Tensor(weights)).sum().backward()
    step = 1e-6
    for tensor, value, index in ((x, x0, 0), (w, w0, 1), (b, b0, 2)):
        expected = np.zeros_like(value)
        for position in np.ndindex(value.shape):
            args = [x0.copy(), w0.copy(), b0.copy()]
            args[index][position] += step
            plus = loss(*args)
            args[index][position] -= 2 * step
            expected[position] = (plus - loss(*args)) / (2 * step)
        np.testing.assert_allclose(to_numpy(tensor.grad), expected, rtol=1e-6, atol=1e-8)


def test_linear_other_ranks_use_the_composed_form():
    rng = np.random.default_rng(3)
    layer = nn.Linear(4, 3, seed=0)
    batch = rng.normal(size=(2, 5, 4)).astype(np.float32)
    out = layer(Tensor(batch))
    expected = batch @ to_numpy(layer.weight.data).T + to_numpy(layer.bias.data)
    np.testing.assert_allclose(to_numpy(out.data), expected, rtol=1e-6)
    assert layer(Tensor(batch[0, 0])).shape == (3,)


def composed_cross_entropy(logits, targets):
    batch, classes = logits.shape
    one_hot = np.zeros((batch, classes), dtype=logits.dtype)
    one_hot[np.arange(batch), targets] = 1
    return -(logits.log_softmax(axis=1) * Tensor(one_hot)).sum() * (1.0 / batch)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_softmax_cross_entropy_matches_composed_operations(dtype, tolerance):
    rng = np.random.default_rng(4)
    values = (rng.normal(size=(16, 10)) * 3).astype(dtype)
    targets = rng.integers(0, 10, size=16)
    fast_logits, slow_logits = Tensor(values, requires_grad=True), Tensor(values, requires_grad=True)
    fast = softmax_cross_entropy(fast_logits, targets)
    slow = composed_cross_entropy(slow_logits, targets)
    assert fast.dtype == dtype and fast.shape == ()
    assert abs(fast.item() - slow.item()) <= tolerance * abs(slow.item())
    (fast * 3.0).backward()
    (slow * 3.0).backward()
    np.testing.assert_allclose(to_numpy(fast_logits.grad), to_numpy(slow_logits.grad), rtol=tolerance, atol=tolerance)
    # the closed form, independently: 3 (softmax - one_hot) / batch
    softmax = np.exp(values - values.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    softmax[np.arange(16), targets] -= 1
    np.testing.assert_allclose(to_numpy(fast_logits.grad), 3 * softmax / 16, rtol=10 * tolerance, atol=tolerance)


def test_softmax_cross_entropy_without_grad_builds_no_graph():
    logits = Tensor(np.zeros((3, 4), dtype=np.float32))
    loss = softmax_cross_entropy(logits, np.array([0, 1, 2]))
    assert not loss.requires_grad and loss._parents == ()
    assert abs(loss.item() - math.log(4)) < 1e-6


# ------------------------------------------------------------------------------ fused optimizer steps
@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 1000 elements, threads from 20000, and LAMB's stored u up to 30000 elements, so that
    small arrays go through every branch: several blocks, a partial last block, two threads, and
    the recomputing second pass."""
    monkeypatch.setattr(fused_threads, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(fused_threads, "MIN_BLOCK", 100)
    monkeypatch.setattr(fused_threads, "PARALLEL_MIN", 20000)
    monkeypatch.setattr(blocked, "WORKSPACE_LIMIT", 30000)
    monkeypatch.setattr(host_threads, "_threads", 2)  # restored afterwards, like the three above


SHAPES = [(5,), (37, 29), (203, 197), (50001,)]  # one block; several; two threads; two threads, recomputing


@pytest.mark.parametrize("decoupled, weight_decay", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_fused_adam_matches_float64_equations_over_25_steps(small_blocks, decoupled, weight_decay):
    rng = np.random.default_rng(5)
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=weight_decay, decoupled=decoupled)
    for shape in SHAPES:
        w = rng.normal(size=shape).astype(np.float32)
        m, v = np.zeros_like(w), np.zeros_like(w)
        w64, m64, v64 = w.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
        for t in range(1, 26):
            g = rng.normal(size=shape).astype(np.float32)
            fused.adam_step(w, g, m, v, step=t, **hyper)
            w64, m64, v64, _ = adam_step(w64, g.astype(np.float64), m64, v64, t, **hyper)
        np.testing.assert_allclose(w, w64, rtol=1e-5, atol=2e-6)
        assert_close_to_float32_rounding(m, m64)
        assert_close_to_float32_rounding(v, v64)


@pytest.mark.parametrize("options", [
    dict(weight_decay=0.01),
    dict(weight_decay=0.0, grad_scale=0.5, clamp_value=None),
    dict(weight_decay=0.1, grad_averaging=False, trust_clip=True, bias_correction=False),
    dict(weight_decay=0.01, use_trust_ratio=False, clamp_value=0.5),
])
def test_fused_lamb_matches_float64_equations_over_25_steps(small_blocks, options):
    rng = np.random.default_rng(6)
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6, clamp_value=10.0) | options
    for shape in SHAPES:
        w = (rng.normal(size=shape) * 0.1).astype(np.float32)
        m, v = np.zeros_like(w), np.zeros_like(w)
        w64, m64, v64 = w.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
        for t in range(1, 26):
            g = rng.normal(size=shape).astype(np.float32)
            recorded = fused.lamb_step(w, g, m, v, step=t, **hyper)
            w64, m64, v64, expected = lamb_step(w64, g.astype(np.float64), m64, v64, t, **hyper)
            np.testing.assert_allclose(recorded, expected, rtol=2e-5)
        np.testing.assert_allclose(w, w64, rtol=1e-5, atol=1e-6)
        assert_close_to_float32_rounding(m, m64)
        assert_close_to_float32_rounding(v, v64)


@pytest.mark.parametrize("threads", [1, 2])
def test_first_pass_sums_each_piece_of_a_run(small_blocks, threads):
    """A ZeRO shard's run of layers in one first pass: each piece's Σw² and Σ(u/direction_scale)² (pieces
    within a block, across blocks and across the two threads' ranges) against float64 sums of the same u."""
    fused.set_num_threads(threads)
    rng = np.random.default_rng(8)
    size = 25007
    w, g = (rng.normal(size=size).astype(np.float32) for _ in range(2))
    m, v, out = np.zeros(size, np.float32), np.zeros(size, np.float32), np.zeros(size, np.float32)
    numbers = fused.lamb_numbers(beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, step=1)
    pieces = [(0, 10), (10, 266), (266, 13000), (13000, 13001), (13001, size)]
    sums, kept = fused.lamb_first_pass(w, g, m, v, numbers, out=out, pieces=pieces)
    assert np.shares_memory(kept, out)
    whole, _ = fused.lamb_first_pass(w, g, np.zeros_like(m), np.zeros_like(v), numbers)  # same step on fresh state
    for (start, stop), (weight, direction) in zip(pieces, sums):
        assert weight == pytest.approx(np.sum(w[start:stop].astype(np.float64) ** 2), rel=1e-5)
        assert direction == pytest.approx(np.sum(out[start:stop].astype(np.float64) ** 2), rel=1e-5)
    assert sum(pair[1] for pair in sums) == pytest.approx(whole[0][1], rel=1e-6)
    # u / direction_scale as the readable rule computes u: m̂/(√v̂ + eps) + weight_decay·w
    m64, v64 = 0.1 * g.astype(np.float64), 0.001 * g.astype(np.float64) ** 2
    u64 = (m64 / 0.1) / (np.sqrt(v64 / 0.001) + 1e-6) + 0.01 * w
    np.testing.assert_allclose(numbers.direction_scale * out, u64, rtol=2e-5, atol=1e-6)


def test_fused_results_do_not_depend_on_the_thread_count(small_blocks):
    rng = np.random.default_rng(7)
    start = [rng.normal(size=(300, 211)).astype(np.float32) for _ in range(3)]
    results = []
    for threads in (1, 2, 3):
        fused.set_num_threads(threads)
        w, g, m, v = (a.copy() for a in start[:1] + start[1:] + [np.abs(start[2])])
        norms = fused.lamb_step(w, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, step=3)
        fused.adam_step(w, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True, step=4)
        results.append((w, m, v, norms))
    for other in results[1:]:
        for a, b in zip(results[0][:3], other[:3]):
            assert np.array_equal(a, b)
        assert results[0][3] == other[3]
    with pytest.raises(ValueError, match="threads"):
        fused.set_num_threads(0)


def many_tensors(rng):
    """Parameters of several sizes (20 small ones and one too large to hand out whole), with gradients."""
    shapes = [(40, 30), (7,), (61, 13), (300,)] * 5 + [(150, 150)]
    params = [Tensor((rng.normal(size=shape) * 0.1).astype(np.float32), requires_grad=True) for shape in shapes]
    return params, [[rng.normal(size=shape).astype(np.float32) for shape in shapes] for _ in range(4)]


@pytest.mark.parametrize("make", [
    lambda params: optim.LAMB(params, lr=1e-2, weight_decay=0.01),
    lambda params: optim.Adam(params, lr=1e-2, weight_decay=1e-3),
    lambda params: optim.AdamW(params, lr=1e-2),
])
def test_whole_tensors_on_threads_give_the_one_thread_numbers(small_blocks, make):
    """The optimizers hand whole tensors to the threads (for_each_tensor): the arrays and norms do not change."""
    results = []
    for threads in (1, 2, 3):
        fused.set_num_threads(threads)
        params, gradients = many_tensors(np.random.default_rng(11))
        optimizer = make(params)
        for step_gradients in gradients:
            for p, g in zip(params, step_gradients):
                p.grad = g
            optimizer.step()
        results.append((params, optimizer))
    (one_params, one_optimizer), others = results[0], results[1:]
    for params, optimizer in others:
        for p, q in zip(one_params, params):
            assert np.array_equal(p.data, q.data)
            for key, value in one_optimizer.state[p].items():
                assert np.array_equal(value, optimizer.state[q][key]), key


def test_for_each_tensor_visits_every_item_once_and_passes_on_errors(small_blocks):
    arrays = [np.zeros(size, dtype=np.float32) for size in (5000, 3000, 3000, 9000, 100, 25000)]
    seen = []
    fused.for_each_tensor(seen.append, list(range(len(arrays))), arrays)
    assert sorted(seen) == list(range(len(arrays)))
    assert seen[0] == 5  # too large to hand out whole: updated first, in the calling thread

    # the two largest shared tensors are updated at the same time, on two threads: each waits for the other
    both_started = threading.Barrier(2, timeout=10)
    names = set()

    def meet(item):
        if item in (3, 0):
            names.add(threading.current_thread().name)
            both_started.wait()

    fused.for_each_tensor(meet, list(range(len(arrays))), arrays)
    assert len(names) == 2

    class Device:  # stands in for a CuPy array: always updated in the calling thread
        size = 10**6

    names = []
    fused.for_each_tensor(lambda item: names.append(threading.current_thread().name), [0], [Device()])
    assert names == [threading.current_thread().name]

    def fail_on_three(item):
        if item == 3:
            raise RuntimeError("tensor 3 failed")
        seen.append(item)

    seen.clear()
    with pytest.raises(RuntimeError, match="tensor 3"):
        fused.for_each_tensor(fail_on_three, list(range(len(arrays))), arrays)
    assert 3 not in seen


def finite_cases():
    """Arrays whose finiteness the one-pass check must get right, with numpy's elementwise answer."""
    rng = np.random.default_rng(10)
    cases = [rng.normal(size=(37, 29)).astype(np.float32), np.zeros(0, dtype=np.float32),
             np.array(2.5, dtype=np.float32), rng.normal(size=(6, 8)).T, rng.normal(size=101)[::3]]
    for bad in (np.nan, np.inf, -np.inf):
        array = rng.normal(size=(50, 40)).astype(np.float32)
        array[17, 3] = bad
        cases += [array, array.T, np.array(bad, dtype=np.float32)]
    huge = np.full(10, 3e38, dtype=np.float32)  # finite, yet its sum of squares overflows
    cases += [huge, -huge, np.array([1e200, -1e200]), np.full((2, 3), 6e4, dtype=np.float16)]
    huge_then_nan = huge.copy()
    huge_then_nan[4] = np.nan  # the overflowed sum must not hide a NaN
    return cases + [huge_then_nan]


def test_all_finite_agrees_with_elementwise_isfinite():
    for array in finite_cases():
        assert all_finite(array) == bool(np.isfinite(array).all()), (array.dtype, array.shape)


def test_supports_only_matching_contiguous_float_arrays():
    a = np.zeros((4, 6), dtype=np.float32)
    assert fused.supports(a, a.copy(), a.copy(), a.copy())
    assert not fused.supports(a, a.T.copy().T, a, a)  # a transposed (Fortran-ordered) gradient
    assert not fused.supports(a, a.astype(np.float64), a, a)
    assert not fused.supports(a.astype(np.float16), a.astype(np.float16))
    assert not fused.supports(np.zeros((4, 6), dtype=np.int32))


# ------------------------------------------------------------------------------ through the optimizers
def run_optimizer(make, steps=22, seed=8):
    """Train a small MLP (float32) for ``steps`` steps; the weights and the optimizer's state."""
    rng = np.random.default_rng(seed)
    model = nn.MLP([12, 300, 40, 5], seed=0)
    optimizer = make(model.parameters())
    x = rng.normal(size=(64, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=64)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.cross_entropy(model(Tensor(x)), y).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name, make", [
    ("Adam", lambda fast: lambda params: optim.Adam(params, lr=1e-2, weight_decay=1e-3, fused=fast)),
    ("AdamW", lambda fast: lambda params: optim.AdamW(params, lr=1e-2, weight_decay=0.1, fused=fast)),
    ("LAMB", lambda fast: lambda params: optim.LAMB(params, lr=1e-2, weight_decay=0.01, fused=fast)),
    ("LAMB clipped", lambda fast: lambda params: optim.LAMB(
        params, lr=1e-2, max_grad_norm=0.1, bias_correction=False, trust_clip=True, fused=fast)),
])
def test_fused_optimizers_match_their_readable_form(small_blocks, name, make):
    fast_model, fast_optimizer = run_optimizer(make(True))
    slow_model, slow_optimizer = run_optimizer(make(False))
    for p, q in zip(fast_model.parameters(), slow_model.parameters()):
        np.testing.assert_allclose(to_numpy(p.data), to_numpy(q.data), rtol=2e-5, atol=2e-6)
        fast_state, slow_state = fast_optimizer.state[p], slow_optimizer.state[q]
        assert fast_state["step"] == slow_state["step"] == 22
        assert_close_to_float32_rounding(fast_state["m"], slow_state["m"])
        assert_close_to_float32_rounding(fast_state["v"], slow_state["v"])
        if name.startswith("LAMB"):
            for key in optim.functional.TRUST_KEYS:
                assert isinstance(fast_state[key], float)
                assert fast_state[key] == pytest.approx(slow_state[key], rel=2e-5)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_training_steps_do_not_grow_memory():
    rng = np.random.default_rng(9)
    model = nn.MLP([64, 32, 10], seed=0)
    optimizer = optim.LAMB(model.parameters(), lr=1e-3, weight_decay=0.01)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=32)

    def steps(count):
        for _ in range(count):
            optimizer.zero_grad()
            nn.cross_entropy(model(Tensor(x)), y).backward()
            optimizer.step()

    steps(20)
    gc.collect()
    tracemalloc.start()
    try:
        steps(5)
        before, _ = tracemalloc.get_traced_memory()
        rss_before = resident_bytes() if _has_statm() else 0
        steps(300)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        rss_after = resident_bytes() if _has_statm() else 0
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, f"traced memory grew by {after - before} bytes over 300 steps"
    assert rss_after - rss_before < 4 * 1024 * 1024, f"resident memory grew by {rss_after - rss_before} bytes"


def _has_statm() -> bool:
    try:
        resident_bytes()
        return True
    except OSError:
        return False
