"""Convolution, max-pooling and the article's CNN: finite-difference gradients in float64, the
forward pass against direct loops written here, the initialisation, and clear errors for bad shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_autograd import check_gradients

from lamb_edu import Tensor, nn, optim
from lamb_edu.backend import to_numpy
from lamb_edu.nn.functional import conv2d, flatten, max_pool2d

rng = np.random.default_rng(0)


def loop_conv2d(x, weight, bias, stride, padding):
    """The definition, one output value at a time."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    batch, _, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = (height - kh) // stride + 1, (width - kw) // stride + 1
    out = np.zeros((batch, out_channels, out_h, out_w))
    for n in range(batch):
        for o in range(out_channels):
            for p in range(out_h):
                for q in range(out_w):
                    window = x[n, :, p * stride:p * stride + kh, q * stride:q * stride + kw]
                    out[n, o, p, q] = (window * weight[o]).sum() + (0.0 if bias is None else bias[o])
    return out


def loop_max_pool2d(x, kernel, stride):
    batch, channels, height, width = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    out = np.zeros((batch, channels, out_h, out_w))
    for p in range(out_h):
        for q in range(out_w):
            out[:, :, p, q] = x[:, :, p * stride:p * stride + kernel, q * stride:q * stride + kernel].max(axis=(2, 3))
    return out


# (x shape, weight shape, stride, padding): square and odd sizes, strides 1-3, padding 0-2, batch 1
CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0),
    ((1, 2, 9, 8), (3, 2, 3, 2), 2, 1),
    ((2, 1, 5, 6), (2, 1, 4, 4), 3, 2),
    ((1, 1, 4, 4), (1, 1, 1, 1), 1, 0),
    ((3, 2, 6, 5), (2, 2, 5, 5), 1, 2),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
def test_conv2d_forward_matches_loop(x_shape, w_shape, stride, padding):
    x, weight, bias = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    expected = loop_conv2d(x, weight, bias, stride, padding)
    got = conv2d(Tensor(x), Tensor(weight), Tensor(bias), stride=stride, padding=padding)
    np.testing.assert_allclose(to_numpy(got.data), expected, rtol=1e-12, atol=1e-12)
    no_bias = conv2d(Tensor(x), Tensor(weight), stride=stride, padding=padding)
    np.testing.assert_allclose(to_numpy(no_bias.data), loop_conv2d(x, weight, None, stride, padding), atol=1e-12)
    as_float32 = conv2d(Tensor(x.astype(np.float32)), Tensor(weight.astype(np.float32)),
                        Tensor(bias.astype(np.float32)), stride=stride, padding=padding)
    assert as_float32.dtype == np.float32
    np.testing.assert_allclose(to_numpy(as_float32.data), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
def test_conv2d_gradients_match_finite_differences(x_shape, w_shape, stride, padding):
    x, weight, bias = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    check_gradients(lambda a, w, b: conv2d(a, w, b, stride=stride, padding=padding), x, weight, bias)


@pytest.mark.parametrize("x_shape, kernel, stride", [
    ((2, 3, 6, 6), 2, 2),      # the CNN's case
    ((1, 2, 7, 9), 3, 2),      # overlapping windows, odd sizes, a remainder that no window covers
    ((2, 1, 5, 5), 2, 1),      # every pixel in up to four windows
    ((1, 1, 4, 6), 3, 3),
])
def test_max_pool2d_forward_and_gradients(x_shape, kernel, stride):
    x = rng.normal(size=x_shape)
    got = max_pool2d(Tensor(x), kernel, stride)
    np.testing.assert_array_equal(to_numpy(got.data), loop_max_pool2d(x, kernel, stride))
    check_gradients(lambda a: max_pool2d(a, kernel, stride), x)


def test_max_pool2d_gradient_goes_to_the_arg_max_only():
    x = Tensor(np.array([[[[1.0, 5.0], [2.0, 3.0]]]]), requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    assert to_numpy(x.grad).tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


def test_a_small_convolutional_network_gradients():
    def network(x, w1, b1, w2):
        hidden = max_pool2d(conv2d(x, w1, b1, padding=1).relu(), 2)
        return flatten(hidden) @ w2

    check_gradients(network, rng.normal(size=(2, 1, 6, 6)), rng.normal(size=(3, 1, 3, 3)), rng.normal(size=3),
                    rng.normal(size=(27, 2)))


def test_conv2d_keeps_float32_and_needs_no_input_gradient():
    x = Tensor(rng.normal(size=(2, 1, 8, 8)).astype(np.float32))
    layer = nn.Conv2d(1, 3, 3, seed=0)
    layer(x).sum().backward()
    assert x.grad is None
    assert layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


def test_conv2d_init_is_pytorch_kaiming_uniform():
    layer = nn.Conv2d(20, 50, 5, seed=0)
    bound = 1 / math.sqrt(20 * 5 * 5)  # gain·sqrt(3/fan_in) with gain sqrt(2/(1+5)) = 1/sqrt(3)
    weight, bias = to_numpy(layer.weight.data), to_numpy(layer.bias.data)
    assert weight.shape == (50, 20, 5, 5) and bias.shape == (50,) and weight.dtype == np.float32
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.99 * bound
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.8 * bound


@pytest.mark.parametrize("x_shape, match", [
    ((2, 3, 8, 8), r"Conv2d\(1, 4.*\(2, 3, 8, 8\).*3 channels.*\(4, 1, 5, 5\)"),  # wrong channels
    ((2, 1, 3, 8), r"Conv2d\(1, 4.*kernel 5x5.*\(4, 1, 5, 5\).*padded input 3x8.*\(2, 1, 3, 8\)"),
    ((1, 8, 8), r"Conv2d\(1, 4.*\(1, 8, 8\).*\(4, 1, 5, 5\)"),  # a 3-D input
])
def test_conv2d_bad_shapes_name_the_layer_and_both_shapes(x_shape, match):
    layer = nn.Conv2d(1, 4, 5, seed=0)
    with pytest.raises(ValueError, match=match):
        layer(Tensor(np.zeros(x_shape)))


def test_pool_flatten_and_arguments_reject_bad_input():
    with pytest.raises(ValueError, match=r"MaxPool2d.*window 3x3.*\(1, 1, 2, 2\)"):
        nn.MaxPool2d(3)(Tensor(np.zeros((1, 1, 2, 2))))
    with pytest.raises(ValueError, match="3-D|batch, channels"):
        max_pool2d(Tensor(np.zeros((1, 4, 4))), 2)
    with pytest.raises(ValueError, match="stride"):
        conv2d(Tensor(np.zeros((1, 1, 4, 4))), Tensor(np.zeros((1, 1, 2, 2))), stride=0)
    with pytest.raises(ValueError, match="flatten"):
        flatten(Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="Conv2d"):
        nn.Conv2d(1, 0, 3)


def test_cnn_is_the_articles_network():
    model = nn.CNN(seed=0)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes == {"conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,), "conv2.weight": (50, 20, 5, 5),
                      "conv2.bias": (50,), "fc1.weight": (500, 800), "fc1.bias": (500,),
                      "fc2.weight": (10, 500), "fc2.bias": (10,)}
    assert sum(p.size for p in model.parameters()) == 431_080  # the PyTorch model's count
    images = rng.normal(size=(3, 784)).astype(np.float32)
    flat, nchw = model(Tensor(images)), model(Tensor(images.reshape(3, 1, 28, 28)))
    assert flat.shape == (3, 10) and flat.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(flat.data), to_numpy(nchw.data))
    again = nn.CNN(seed=0)
    pairs = zip(model.parameters(), again.parameters())
    assert all(np.array_equal(to_numpy(a.data), to_numpy(b.data)) for a, b in pairs)
    with pytest.raises(ValueError, match=r"CNN.*\(3, 785\)"):
        model(Tensor(np.zeros((3, 785))))


def einsum_conv2d(x, weight, bias, stride, padding):
    """The same sum as loop_conv2d, over NumPy's own sliding windows: fast enough for finite differences."""
    windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", windows, weight) + bias[:, None, None]


def reference_cnn(weights, x, conv=loop_conv2d):
    """The CNN's forward pass from its weights, with the convolution and pooling of this file."""
    hidden = np.maximum(conv(x, weights["conv1.weight"], weights["conv1.bias"], 1, 0), 0)
    hidden = np.maximum(conv(loop_max_pool2d(hidden, 2, 2), weights["conv2.weight"], weights["conv2.bias"], 1, 0), 0)
    hidden = loop_max_pool2d(hidden, 2, 2).reshape(len(x), -1)
    hidden = np.maximum(hidden @ weights["fc1.weight"].T + weights["fc1.bias"], 0)
    return hidden @ weights["fc2.weight"].T + weights["fc2.bias"]


def test_cnn_forward_and_gradients_in_float64():
    model = nn.CNN(seed=1, dtype=np.float64)
    x, targets = rng.normal(size=(2, 1, 28, 28)), np.array([3, 7])
    weights = model.state_dict()
    np.testing.assert_allclose(to_numpy(model(Tensor(x)).data), reference_cnn(weights, x), rtol=1e-10, atol=1e-10)

    np.testing.assert_allclose(reference_cnn(weights, x, einsum_conv2d), reference_cnn(weights, x), rtol=1e-12)

    def loss_of(values):
        logits = reference_cnn(values, x, einsum_conv2d)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return (np.log(np.exp(shifted).sum(axis=1)) - shifted[[0, 1], targets]).mean()

    nn.cross_entropy(model(Tensor(x)), targets).backward()
    picker = np.random.default_rng(5)
    for name, parameter in model.named_parameters():  # a few coordinates of every parameter, by central differences
        grad = to_numpy(parameter.grad)
        for _ in range(3):
            index = tuple(int(picker.integers(0, size)) for size in parameter.shape)
            plus, minus = dict(weights), dict(weights)
            plus[name], minus[name] = weights[name].copy(), weights[name].copy()
            plus[name][index] += 1e-6
            minus[name][index] -= 1e-6
            numeric = (loss_of(plus) - loss_of(minus)) / 2e-6
            assert abs(grad[index] - numeric) < 1e-6 * max(1.0, abs(numeric)), (name, index)


def test_cnn_learns_a_small_batch_with_lamb():
    model = nn.CNN(seed=0)
    x = rng.normal(size=(32, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=32)
    optimizer = optim.LAMB(model.parameters(), lr=0.02, weight_decay=0.01, bias_correction=False)
    losses = []
    for _ in range(25):  # memorising 32 random labels
        optimizer.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_reused_im2col_buffers_never_mix_two_passes():
    weight = rng.normal(size=(3, 2, 3, 3))
    inputs = [rng.normal(size=(2, 2, 6, 6)) for _ in range(3)]

    def gradients(x, w):
        x, w = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        return x, w, (conv2d(x, w) * 1.5).sum()

    expected = []
    for x in inputs[:2]:
        tx, tw, loss = gradients(x, weight)
        loss.backward()
        expected.append((to_numpy(tx.grad), to_numpy(tw.grad)))
    first, second = gradients(inputs[0], weight), gradients(inputs[1], weight)  # two graphs alive at once
    conv2d(Tensor(inputs[2]), Tensor(weight))  # and a pass without a graph in between
    second[2].backward()
    first[2].backward()
    for (tx, tw, _), (grad_x, grad_w) in zip((first, second), expected):
        np.testing.assert_array_equal(to_numpy(tx.grad), grad_x)
        np.testing.assert_array_equal(to_numpy(tw.grad), grad_w)


def test_cnn_trains_through_fit_with_the_loops_flat_batches():
    from lamb_edu.data import MNIST
    from lamb_edu.train import fit

    images = np.random.default_rng(1)
    data = MNIST(images.integers(0, 256, size=(96, 28, 28), dtype=np.uint8), images.integers(0, 10, size=96),
                 images.integers(0, 256, size=(40, 28, 28), dtype=np.uint8), images.integers(0, 10, size=40))
    model = nn.CNN(seed=0)
    optimizer = optim.LAMB(model.parameters(), lr=0.02, weight_decay=0.01, bias_correction=False)
    history = fit(model, optimizer, data, epochs=1, batch_size=32, log_every=1, progress=False)
    assert history.parameter_names[:2] == ["conv1.weight", "conv1.bias"] and history.steps == 3
    assert len(history.trust_ratio) == 3 and all(np.isfinite(row).all() for row in history.trust_ratio)
    assert 0.0 <= history.epochs[-1]["test_accuracy"] <= 1.0


def test_conv_and_pool_pass_images_batch_innermost_and_take_any_gradient_layout():
    x = Tensor(rng.normal(size=(4, 2, 10, 10)).astype(np.float32))
    weight = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    incoming = rng.normal(size=(4, 3, 4, 4)).astype(np.float32)
    grads = []
    for layout in ("C", "batch innermost"):
        w = Tensor(weight, requires_grad=True)
        hidden = conv2d(x, w)
        pooled = max_pool2d(hidden, 2)
        for image in (hidden, pooled):  # the product of im2col is the output, no transposed copy
            assert image.data.transpose(1, 2, 3, 0).flags.c_contiguous
        batch_innermost = np.ascontiguousarray(incoming.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        grad = incoming if layout == "C" else batch_innermost
        pooled.backward(grad)
        grads.append(to_numpy(w.grad))
    np.testing.assert_array_equal(grads[0], grads[1])
    reference = np.zeros_like(weight, dtype=np.float64)  # the chain rule by hand, in float64
    images = to_numpy(x.data).astype(np.float64)
    hidden = loop_conv2d(images, weight.astype(np.float64), None, 1, 0)
    for n, o, p, q in np.ndindex(*incoming.shape):
        window = hidden[n, o, 2 * p:2 * p + 2, 2 * q:2 * q + 2]
        i, j = np.unravel_index(window.argmax(), window.shape)  # the pixel the pooled value came from
        reference[o] += incoming[n, o, p, q] * images[n, :, 2 * p + i:2 * p + i + 3, 2 * q + j:2 * q + j + 3]
    np.testing.assert_allclose(grads[0], reference, rtol=1e-4, atol=1e-4)
