"""Layers, the MLP, cross-entropy and a tiny training run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, nn
from lamb_edu.backend import to_numpy


def reference_mlp_loss(weights, biases, x, targets):
    """MLP + cross-entropy written directly in float64 NumPy (independent of the autograd)."""
    h = x
    for index, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if index < len(weights) - 1:
            h = np.maximum(h, 0)
    shifted = h - h.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(targets)), targets].mean()


def test_named_parameters_follow_pytorch_names():
    model = nn.MLP([5, 4, 3, 2], seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight", "layers.4.bias",
    ]
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(4, 5), (4,), (3, 4), (3,), (2, 3), (2,)]
    assert all(p.requires_grad and p.dtype == np.float32 for p in model.parameters())
    assert isinstance(model.layers[1], nn.ReLU) and len(model.layers) == 5


def test_linear_init_is_uniform_in_pytorch_bound():
    layer = nn.Linear(400, 300, seed=1)
    bound = 1 / math.sqrt(400)
    weight = to_numpy(layer.weight.data)
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.99 * bound
    # a uniform(-a, a) has standard deviation a/sqrt(3)
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(to_numpy(layer.bias.data)).max() <= bound


def test_seeded_models_are_identical_and_seeds_differ():
    first, second, other = nn.MLP([6, 5, 2], seed=3), nn.MLP([6, 5, 2], seed=3), nn.MLP([6, 5, 2], seed=4)
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters()):
        assert np.array_equal(to_numpy(a.data), to_numpy(b.data))
        assert not np.array_equal(to_numpy(a.data), to_numpy(c.data))


def test_linear_without_bias():
    layer = nn.Linear(3, 2, bias=False, seed=0)
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((4, 3), dtype=np.float32)
    assert np.allclose(to_numpy(layer(Tensor(x)).data), x @ to_numpy(layer.weight.data).T)


def test_mlp_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = nn.MLP([7, 6, 5, 4], seed=0, dtype=np.float64)
    x = rng.normal(size=(9, 7))
    targets = rng.integers(0, 4, size=9)
    loss = nn.cross_entropy(model(Tensor(x)), targets)
    weights = [to_numpy(m.weight.data).copy() for m in model.layers[::2]]
    biases = [to_numpy(m.bias.data).copy() for m in model.layers[::2]]
    assert abs(loss.item() - reference_mlp_loss(weights, biases, x, targets)) < 1e-12
    loss.backward()
    step = 1e-6
    for layer, w, b in zip(model.layers[::2], weights, biases):
        for parameter, value in ((layer.weight, w), (layer.bias, b)):
            expected = np.zeros_like(value)
            for position in np.ndindex(value.shape):
                original = value[position]
                value[position] = original + step
                plus = reference_mlp_loss(weights, biases, x, targets)
                value[position] = original - step
                minus = reference_mlp_loss(weights, biases, x, targets)
                value[position] = original
                expected[position] = (plus - minus) / (2 * step)
            got = to_numpy(parameter.grad)
            assert got.dtype == np.float64
            assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-6


def test_cross_entropy_matches_reference_and_is_stable():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    targets = np.array([0, 2, 1])
    loss = nn.cross_entropy(Tensor(logits, requires_grad=True), targets)
    expected = (0.0 + (1e4 - 5.0) + math.log(3.0)) / 3
    assert math.isfinite(loss.item())
    assert abs(loss.item() - expected) / expected < 1e-5
    logits_tensor = Tensor(logits, requires_grad=True)
    nn.cross_entropy(logits_tensor, targets).backward()
    assert np.all(np.isfinite(to_numpy(logits_tensor.grad)))


def test_cross_entropy_rejects_bad_targets():
    logits = Tensor(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="integer targets"):
        nn.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="integer targets"):
        nn.cross_entropy(logits, np.array([0, 1]))
    classes = logits.shape[1]
    for bad in (-1, classes):
        with pytest.raises(ValueError, match=r"class indices in \[0, "):
            nn.cross_entropy(logits, np.array([0, 1, bad]))


def test_mlp_overfits_32_examples_with_gradient_descent():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(32, 20)).astype(np.float32))
    targets = rng.integers(0, 10, size=32)
    model = nn.MLP([20, 64, 10], seed=0)
    for _ in range(500):
        model.zero_grad()
        loss = nn.cross_entropy(model(x), targets)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    assert loss.item() < 0.01


def test_state_dict_round_trip_and_checks():
    source, target = nn.MLP([4, 3, 2], seed=0), nn.MLP([4, 3, 2], seed=1)
    target.load_state_dict(source.state_dict())
    for a, b in zip(source.parameters(), target.parameters()):
        assert np.array_equal(to_numpy(a.data), to_numpy(b.data))
    bad = source.state_dict()
    bad["layers.0.weight"] = np.zeros((2, 2))
    before = to_numpy(target.layers[2].weight.data).copy()
    with pytest.raises(ValueError, match="layers.0.weight"):
        target.load_state_dict(bad)
    assert np.array_equal(to_numpy(target.layers[2].weight.data), before)


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        nn.MLP([5])
    with pytest.raises(ValueError):
        nn.Linear(0, 3)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.MLP([784, 2.5, 10]), r"MLP size 1: 2\.5"),  # int(2.5) built a width-2 layer
    (lambda: nn.MLP([784.0, 10]), r"MLP size 0: 784\.0"),
    (lambda: nn.MLP([784, True, 10]), "MLP size 1: True"),
    (lambda: nn.MLP([784, "64", 10]), "MLP size 1: '64'"),
    (lambda: nn.Linear(3, 2.5), r"out_features: 2\.5"),
    (lambda: nn.Conv2d(1, 4, (3, 2.0)), r"kernel_size: 2\.0"),
    (lambda: nn.Conv2d(1, 4, 3, stride=1.5), r"stride: 1\.5"),
    (lambda: nn.Conv2d(1, 4, 3, padding=-1), "padding: -1"),
    (lambda: nn.MaxPool2d(0), "kernel_size: 0"),  # constructed, and failed only at the first forward pass
    (lambda: nn.MaxPool2d(-2), "kernel_size: -2"),
    (lambda: nn.MaxPool2d(2.0), r"kernel_size: 2\.0"),
    (lambda: nn.MaxPool2d(2, stride=0), "stride: 0"),
    (lambda: nn.MaxPool2d(16), r"kernel_size in \[1, 15\]"),
])
def test_sizes_that_are_not_positive_integers_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_integer_sizes_are_integers():
    model = nn.MLP([np.int64(4), np.int32(3), 2], seed=0)
    assert model.sizes == [4, 3, 2] and all(type(size) is int for size in model.sizes)
    assert nn.MaxPool2d(np.int64(2)).kernel_size == 2


BAD_ENTRIES = {
    "strings": (np.array(["a", "b"]), "has dtype <U1, not real numbers"),
    "complex": (np.array([1j, 0]), "has dtype complex128"),
    "None": (None, "has dtype object"),
    "ragged list": ([[1.0], [1.0, 2.0]], "is not an array of numbers"),
    "scalar": (1.0, r"has shape \(\), the parameter has \(2,\)"),
    "no shape": ({"a": 1}, "has dtype object"),
    "NaN": (np.array([np.nan, 0.0]), "holds NaN or inf"),
    "inf": (np.array([0.0, -np.inf], dtype=np.float32), "holds NaN or inf"),
    "too large for float32": (np.array([1e300, 0.0]), "holds values too large for float32"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ENTRIES))
def test_load_state_dict_checks_every_entry_before_changing_any(kind):
    """The bad entry is the last parameter: before, the earlier ones were already replaced when it raised."""
    source, target = nn.MLP([4, 3, 2], seed=0), nn.MLP([4, 3, 2], seed=1)
    before = {name: array.copy() for name, array in target.state_dict().items()}
    state = source.state_dict()
    value, message = BAD_ENTRIES[kind]
    state["layers.2.bias"] = value
    with pytest.raises(ValueError, match=r"state_dict\['layers\.2\.bias'\] " + message):
        target.load_state_dict(state)
    for name, array in target.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


@pytest.mark.parametrize("state, message", [
    (["layers.0.weight"], "must be a dict of parameter name to array, got list"),
    (None, "got NoneType"),
])
def test_load_state_dict_refuses_what_is_not_a_dict_with_a_value_error(state, message):
    with pytest.raises(ValueError, match=message):
        nn.MLP([4, 3, 2], seed=0).load_state_dict(state)


def test_load_state_dict_names_unexpected_keys_of_any_type():
    model = nn.MLP([4, 3, 2], seed=0)
    state = {**model.state_dict(), 3: np.zeros(2)}
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['3'\]"):
        model.load_state_dict(state)


def test_load_state_dict_takes_lists_and_integers_in_the_parameter_dtype():
    model = nn.MLP([2, 2], seed=0)
    model.load_state_dict({"layers.0.weight": [[1, 2], [3, 4]], "layers.0.bias": np.array([5, 6], dtype=np.int64)})
    assert to_numpy(model.layers[0].weight.data).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert model.layers[0].bias.dtype == np.float32 and to_numpy(model.layers[0].bias.data).tolist() == [5.0, 6.0]
