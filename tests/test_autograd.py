"""Every operation's gradient against central finite differences, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, no_grad, optim
from lamb_edu.backend import to_numpy


def numeric_gradient(function, inputs, index, step=1e-6):
    """d sum(function(*inputs) * weights) / d inputs[index] by central differences, on the host."""
    values = [np.array(x, dtype=np.float64) for x in inputs]
    weights = np.random.default_rng(99).normal(size=np.shape(function(*[Tensor(v) for v in values]).data))
    grad = np.zeros_like(values[index])
    for position in np.ndindex(values[index].shape):
        original = values[index][position]
        values[index][position] = original + step
        plus = (to_numpy(function(*[Tensor(v) for v in values]).data) * weights).sum()
        values[index][position] = original - step
        minus = (to_numpy(function(*[Tensor(v) for v in values]).data) * weights).sum()
        values[index][position] = original
        grad[position] = (plus - minus) / (2 * step)
    return grad, weights


def check_gradients(function, *inputs, tolerance=1e-6):
    tensors = [Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    for index in range(len(inputs)):
        expected, weights = numeric_gradient(function, inputs, index)
        for t in tensors:
            t.grad = None
        out = function(*tensors)
        (out * weights).sum().backward()
        got = to_numpy(tensors[index].grad)
        assert got.shape == np.shape(inputs[index])
        assert got.dtype == np.float64
        error = np.abs(got - expected).max() / max(1.0, np.abs(expected).max())
        assert error < tolerance, f"input {index}: relative error {error:.2e}"


rng = np.random.default_rng(0)
A = rng.normal(size=(3, 4))
B = rng.normal(size=(3, 4))
POSITIVE = rng.uniform(0.5, 2.0, size=(3, 4))
ROW = rng.normal(size=(4,))
COLUMN = rng.normal(size=(3, 1))


@pytest.mark.parametrize(
    "name, function, inputs",
    [
        ("add", lambda a, b: a + b, (A, B)),
        ("sub", lambda a, b: a - b, (A, B)),
        ("mul", lambda a, b: a * b, (A, B)),
        ("div", lambda a, b: a / b, (A, POSITIVE)),
        ("neg", lambda a: -a, (A,)),
        ("pow", lambda a: a**3, (A,)),
        ("pow fractional", lambda a: a**0.5, (POSITIVE,)),
        ("exp", lambda a: a.exp(), (A,)),
        ("log", lambda a: a.log(), (POSITIVE,)),
        ("relu", lambda a: a.relu(), (A,)),
        ("tanh", lambda a: a.tanh(), (A,)),
        ("matmul", lambda a, b: a @ b, (A, rng.normal(size=(4, 5)))),
        ("matmul vector right", lambda a, b: a @ b, (A, ROW)),
        ("matmul vector left", lambda a, b: a @ b, (rng.normal(size=(3,)), A)),
        ("matmul batched broadcast", lambda a, b: a @ b, (rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 2)))),
        ("sum all", lambda a: a.sum(), (A,)),
        ("sum axis", lambda a: a.sum(axis=0), (A,)),
        ("sum keepdims", lambda a: a.sum(axis=1, keepdims=True), (A,)),
        ("sum axes", lambda a: a.sum(axis=(0, 2)), (rng.normal(size=(2, 3, 4)),)),
        ("mean", lambda a: a.mean(), (A,)),
        ("mean axis keepdims", lambda a: a.mean(axis=1, keepdims=True), (A,)),
        ("reshape", lambda a: a.reshape(2, 6) * np.arange(12.0).reshape(2, 6), (A,)),
        ("transpose", lambda a: a.transpose() * np.arange(12.0).reshape(4, 3), (A,)),
        ("transpose axes", lambda a: a.transpose(2, 0, 1) * np.arange(24.0).reshape(4, 2, 3),
         (rng.normal(size=(2, 3, 4)),)),
        ("log_softmax", lambda a: a.log_softmax(axis=1), (A,)),
        ("log_softmax axis 0", lambda a: a.log_softmax(axis=0), (A,)),
        ("broadcast add row", lambda a, b: a + b, (A, ROW)),
        ("broadcast mul column", lambda a, b: a * b, (A, COLUMN)),
        ("broadcast div row", lambda a, b: a / b, (A, ROW**2 + 1)),
        ("broadcast sub scalar-shaped", lambda a, b: a - b, (A, np.array([[0.3]]))),
        ("tensor used twice", lambda a: a * a + a, (A,)),
        ("tensor used twice via chain", lambda a, b: (a * b).tanh() * a + (b @ a.T).sum(), (A, B)),
        ("python numbers", lambda a: 2.0 * a - 1.0 + 3.0 / (a * a + 1.0), (A,)),
    ],
)
def test_gradient_matches_finite_differences(name, function, inputs):
    check_gradients(function, *inputs)


def test_gradient_keeps_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True)
    ((x @ w).relu() * 2.0).mean().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert (x @ w).dtype == np.float32


def test_python_numbers_become_default_dtype():
    assert Tensor(1.5).dtype == backend.default_dtype() == np.float32
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float64


def test_backward_accumulates_into_existing_grad_and_handles_reuse():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    assert to_numpy(x.grad).tolist() == [4.0 + 3.0]


def test_backward_needs_a_scalar():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2.0).backward()


def test_intermediate_graph_is_freed():
    x = Tensor(np.ones(3), requires_grad=True)
    hidden = x * 2.0
    loss = hidden.sum()
    loss.backward()
    assert hidden.grad is None and hidden._parents == () and x.grad is not None


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y._parents == ()


def test_constants_get_no_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    constant = Tensor(np.full(3, 5.0))
    (x * constant).sum().backward()
    assert constant.grad is None
    assert to_numpy(x.grad).tolist() == [5.0, 5.0, 5.0]


def test_item_shape_dtype():
    t = Tensor(np.array([[3.5]]))
    assert t.item() == 3.5 and t.shape == (1, 1) and t.dtype == np.float64


def test_pow_rejects_tensor_exponent():
    with pytest.raises(TypeError):
        Tensor(np.ones(2)) ** Tensor(np.ones(2))


def test_deep_graph_does_not_hit_recursion_limit():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.sum().backward()
    assert to_numpy(x.grad).tolist() == [1.0, 1.0]


def test_backward_rejects_a_grad_of_the_wrong_shape_and_changes_nothing():
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    y = x * 2.0
    for bad in (np.ones((4, 3)), np.ones(4)):
        with pytest.raises(ValueError, match=r"\(4, 3\)|\(4,\)") as error:
            y.backward(bad)
        assert "(3, 4)" in str(error.value)
        assert x.grad is None
    with pytest.raises(ValueError, match=r"\(2,\).*\(3, 4\)"):
        x.backward(np.ones(2))  # a leaf too
    assert x.grad is None
    y.backward(np.full((3, 4), 0.5))  # the graph is intact after the refusals
    assert to_numpy(x.grad).tolist() == [[1.0] * 4] * 3


def test_second_backward_through_a_freed_graph_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    assert to_numpy(x.grad).tolist() == [2.0, 4.0]


def test_backward_through_a_node_another_backward_freed_raises():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    shared = x * 3.0
    first, second = shared.sum(), (shared * shared).sum()
    first.backward()
    with pytest.raises(RuntimeError, match="second time"):
        second.backward()  # its path to x runs through `shared`, freed by the first backward
    assert to_numpy(x.grad).tolist() == [3.0, 3.0]


def test_backward_on_a_leaf_accumulates():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.backward(np.array([1.0, 1.0]))
    x.backward(np.array([0.5, 0.5]))
    assert to_numpy(x.grad).tolist() == [1.5, 1.5]


def test_accumulate_is_an_instance_method():
    assert not isinstance(Tensor.__dict__["_accumulate"], staticmethod)


def test_backward_takes_a_tensor_gradient_by_its_data():
    x = Tensor(np.arange(3.0, dtype=np.float32), requires_grad=True)
    (x * 2.0).backward(Tensor(np.array([1.0, 10.0, 100.0])))
    assert to_numpy(x.grad).tolist() == [2.0, 20.0, 200.0] and x.grad.dtype == np.float32


@pytest.mark.parametrize("bad", ["1", b"1", True, ["1", "2", "3"], np.array(["1", "2", "3"]), np.array([1j, 0, 0]),
                                 np.array([True, False, True]), {"a": 1}, object()],
                         ids=["str", "bytes", "bool", "list of str", "str array", "complex", "bool array", "dict",
                              "object"])
def test_backward_refuses_a_gradient_that_is_not_real_numbers_and_changes_nothing(bad):
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"backward\(grad\) must be real numbers, got "):
        y.backward(bad)
    assert x.grad is None
    y.backward(np.ones(3))  # the graph is intact
    assert to_numpy(x.grad).tolist() == [2.0, 2.0, 2.0]


def test_backward_refuses_a_string_on_a_scalar_too():
    x = Tensor(np.array(2.0), requires_grad=True)
    with pytest.raises(ValueError, match="must be real numbers, got '1'"):  # NumPy would read "1" as 1.0
        (x * x).backward("1")


@pytest.mark.parametrize("shape, axis, expected_shape", [((0,), None, ()), ((3, 0), 1, (3,)), ((0, 4), 0, (4,)),
                                                          ((2, 0, 5), (0, 1), (5,))])
def test_the_mean_over_no_elements_is_nan_as_in_numpy(shape, axis, expected_shape):
    data = np.zeros(shape, dtype=np.float32)
    x = Tensor(data, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        mean = x.mean(axis=axis)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        reference = data.mean(axis=axis)
    assert mean.shape == expected_shape == reference.shape and np.isnan(to_numpy(mean.data)).all()
    assert mean.dtype == np.float32
    mean.backward(np.ones(expected_shape, dtype=np.float32))
    assert x.grad.shape == shape


def test_a_tensor_given_to_an_optimizer_as_a_gradient_is_named():
    p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    optimizer = optim.Adam([p])
    p.grad = Tensor(np.ones(3, dtype=np.float32))  # was: AttributeError "'Tensor' object has no attribute 'conjugate'"
    with pytest.raises(ValueError, match=r"parameter 0 of group 0.*is a Tensor, not an array \(set p\.grad = "):
        optimizer.step()
    assert to_numpy(p.data).tolist() == [1.0, 1.0, 1.0] and not optimizer.state
