"""The transformer's graph operations: forward against direct float64 NumPy references written here, and
gradients against central finite differences and against hand-derived float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_autograd import check_gradients

from lamb_edu import Tensor, nn
from lamb_edu.backend import to_numpy
from lamb_edu.nn.functional import (
    embedding,
    gelu,
    layer_norm,
    linear,
    masked_softmax_cross_entropy,
    scaled_dot_product_attention,
    self_attention,
)

rng = np.random.default_rng(0)


def backward_with(function, upstream, *arrays):
    """The gradients of sum(function(*tensors) * upstream) with respect to each array, in float64."""
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    (function(*tensors) * upstream).sum().backward()
    return [to_numpy(t.grad) for t in tensors]


# ------------------------------------------------------------------------------------------ embedding
def test_embedding_gathers_rows_and_sums_repeated_ids_on_the_way_back():
    weight = rng.normal(size=(7, 3))
    ids = np.array([[0, 3, 3], [6, 3, 0]])
    out = embedding(ids, Tensor(weight))
    np.testing.assert_array_equal(to_numpy(out.data), weight[ids])
    upstream = rng.normal(size=(2, 3, 3))
    expected = np.zeros_like(weight)
    for position in np.ndindex(ids.shape):  # every occurrence adds its row
        expected[ids[position]] += upstream[position]
    (got,) = backward_with(lambda w: embedding(ids, w), upstream, weight)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.all(got[[1, 2, 4, 5]] == 0)  # rows no id picked get nothing
    check_gradients(lambda w: embedding(ids, w), weight)


# ----------------------------------------------------------------------------------------- layer norm
def reference_layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def reference_layer_norm_grad_x(x, weight, eps, upstream):
    """Through the Jacobian, row by row: dy_i/dx_j = w_i·r·(δ_ij − 1/D − x̂_i·x̂_j/D)."""
    dim = x.shape[-1]
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index]
        r = 1 / np.sqrt(row.var() + eps)
        x_hat = (row - row.mean()) * r
        jacobian = weight[:, None] * r * (np.eye(dim) - 1 / dim - np.outer(x_hat, x_hat) / dim)
        grad[index] = upstream[index] @ jacobian
    return grad


@pytest.mark.parametrize("shape, eps", [((4, 6), 1e-5), ((2, 3, 5), 1e-12), ((3, 1, 8), 0.1)])
def test_layer_norm_matches_reference(shape, eps):
    x = rng.normal(size=shape) * 3 + 1
    weight, bias = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    out = layer_norm(Tensor(x), Tensor(weight), Tensor(bias), eps)
    np.testing.assert_allclose(to_numpy(out.data), reference_layer_norm(x, weight, bias, eps), rtol=1e-12, atol=1e-12)
    upstream = rng.normal(size=shape)
    got_x, got_w, got_b = backward_with(lambda a, w, b: layer_norm(a, w, b, eps), upstream, x, weight, bias)
    x_hat = reference_layer_norm(x, np.ones_like(weight), np.zeros_like(bias), eps)
    np.testing.assert_allclose(got_x, reference_layer_norm_grad_x(x, weight, eps, upstream), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_w, (upstream * x_hat).reshape(-1, shape[-1]).sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(got_b, upstream.reshape(-1, shape[-1]).sum(axis=0), rtol=1e-10)
    check_gradients(lambda a, w, b: layer_norm(a, w, b, eps), x, weight, bias)


def test_layer_norm_keeps_float32_and_checks_shapes():
    x = Tensor(rng.normal(size=(2, 4)).astype(np.float32), requires_grad=True)
    weight, bias = Tensor(np.ones(4, np.float32), requires_grad=True), Tensor(np.zeros(4, np.float32))
    out = layer_norm(x, weight, bias, 1e-12)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32 and weight.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        layer_norm(x, Tensor(np.ones(3)), bias)


# ----------------------------------------------------------------------------------------------- GELU
def test_gelu_matches_the_tanh_formula_and_its_derivative():
    x = np.concatenate([np.linspace(-6, 6, 25), rng.normal(size=11) * 2])
    c = math.sqrt(2 / math.pi)
    inner = c * (x + 0.044715 * x**3)
    expected = 0.5 * x * (1 + np.tanh(inner))
    np.testing.assert_allclose(to_numpy(gelu(Tensor(x)).data), expected, rtol=1e-13, atol=1e-15)
    # the derivative written another way: d/dx [x·σ(2·inner)] with σ the logistic function
    sigma = 1 / (1 + np.exp(-2 * inner))
    derivative = sigma + x * 2 * sigma * (1 - sigma) * c * (1 + 3 * 0.044715 * x**2)
    upstream = rng.normal(size=x.shape)
    (got,) = backward_with(gelu, upstream, x)
    np.testing.assert_allclose(got, upstream * derivative, rtol=1e-11, atol=1e-13)
    check_gradients(gelu, x.reshape(6, 6))
    assert gelu(Tensor(x.astype(np.float32))).dtype == np.float32


# ------------------------------------------------------------------------------------------ attention
def reference_attention(q, k, v, mask=None):
    """One head and one batch item at a time, the softmax written out."""
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    for index in np.ndindex(q.shape[:-2]):
        scores = q[index] @ k[index].T / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores + np.broadcast_to(mask, q.shape[:-2] + scores.shape)[index]
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        out[index] = weights / weights.sum(axis=1, keepdims=True) @ v[index]
    return out


def reference_attention_grads(q, k, v, upstream):
    """grad_q, grad_k, grad_v through the softmax's Jacobian diag(p) − p·pᵀ, row by row."""
    grads = [np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)]
    scale = 1 / math.sqrt(q.shape[-1])
    for index in np.ndindex(q.shape[:-2]):
        scores = q[index] @ k[index].T * scale
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grads[2][index] = p.T @ upstream[index]
        dp = upstream[index] @ v[index].T
        ds = np.stack([(np.diag(p[i]) - np.outer(p[i], p[i])) @ dp[i] for i in range(len(p))]) * scale
        grads[0][index] = ds @ k[index]
        grads[1][index] = ds.T @ q[index]
    return grads


def test_attention_matches_reference_forward_and_gradients():
    q, k, v = (rng.normal(size=(2, 3, 5, 4)) for _ in range(3))
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v))
    np.testing.assert_allclose(to_numpy(out.data), reference_attention(q, k, v), rtol=1e-12, atol=1e-12)
    upstream = rng.normal(size=out.shape)
    got = backward_with(scaled_dot_product_attention, upstream, q, k, v)
    for actual, expected in zip(got, reference_attention_grads(q, k, v, upstream)):
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
    check_gradients(scaled_dot_product_attention, q, k, v)


def test_attention_with_masks():
    q, k, v = rng.normal(size=(2, 2, 4, 3)), rng.normal(size=(2, 2, 6, 3)), rng.normal(size=(2, 2, 6, 3))
    additive = rng.normal(size=(4, 6))
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), additive)
    np.testing.assert_allclose(to_numpy(out.data), reference_attention(q, k, v, additive), rtol=1e-12)
    check_gradients(lambda a, b, c: scaled_dot_product_attention(a, b, c, additive), q, k, v)
    keep = np.ones((2, 1, 4, 6), dtype=bool)
    keep[0, :, :, 3:] = False  # the first item's queries see only its first three keys
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), keep)
    np.testing.assert_allclose(to_numpy(out.data), reference_attention(q, k, v, np.where(keep, 0.0, -np.inf)),
                               rtol=1e-12)
    check_gradients(lambda a, b, c: scaled_dot_product_attention(a, b, c, keep), q, k, v)


def test_attention_is_stable_for_large_scores_and_checks_shapes():
    q, k, v = rng.normal(size=(1, 1, 3, 2)) * 1e3, rng.normal(size=(1, 1, 3, 2)) * 1e3, rng.normal(size=(1, 1, 3, 2))
    out = to_numpy(scaled_dot_product_attention(Tensor(q.astype(np.float32)), Tensor(k.astype(np.float32)),
                                                Tensor(v.astype(np.float32))).data)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, reference_attention(q, k, v), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="same leading axes"):
        scaled_dot_product_attention(Tensor(q), Tensor(k[..., :1]), Tensor(v))


def composed_self_attention(x, wq, bq, wk, bk, wv, bv, heads, mask=None):
    """Projections, split, attention and join from separate graph operations."""
    batch, seq, d_model = x.shape

    def split(t):
        return t.reshape(batch, seq, heads, d_model // heads).transpose(0, 2, 1, 3)

    out = scaled_dot_product_attention(split(linear(x, wq, bq)), split(linear(x, wk, bk)), split(linear(x, wv, bv)),
                                       mask)
    return out.transpose(0, 2, 1, 3).reshape(batch, seq, d_model)


@pytest.mark.parametrize("mask", [None, "causal"])
def test_self_attention_is_the_composed_form_in_one_node(mask):
    batch, seq, d_model, heads = 2, 5, 6, 3
    if mask == "causal":
        mask = np.tril(np.ones((seq, seq), dtype=bool))
    arrays = [rng.normal(size=(batch, seq, d_model))]
    for _ in range(3):
        arrays += [rng.normal(size=(d_model, d_model)), rng.normal(size=d_model)]

    def fused(x, wq, bq, wk, bk, wv, bv):
        return self_attention(x, [(wq, bq), (wk, bk), (wv, bv)], heads, mask)

    def composed(*tensors):
        return composed_self_attention(*tensors, heads, mask)

    out = fused(*[Tensor(a) for a in arrays])
    np.testing.assert_allclose(to_numpy(out.data), to_numpy(composed(*[Tensor(a) for a in arrays]).data), rtol=1e-12)
    upstream = rng.normal(size=out.shape)
    for got, expected in zip(backward_with(fused, upstream, *arrays), backward_with(composed, upstream, *arrays)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    check_gradients(fused, *arrays)
    module = nn.MultiHeadSelfAttention(d_model, heads, seed=0, dtype=np.float64)
    x = Tensor(arrays[0])
    np.testing.assert_allclose(to_numpy(module(x, mask).data), to_numpy(module.composed(x, mask).data), rtol=1e-12)


# ------------------------------------------------------------------------------------------- linear
def test_linear_on_sequences_is_one_product_over_batch_and_seq():
    x, weight, bias = rng.normal(size=(2, 3, 4)), rng.normal(size=(5, 4)), rng.normal(size=5)
    out = linear(Tensor(x), Tensor(weight), Tensor(bias))
    assert out._op == "" and out.shape == (2, 3, 5)  # no gradient needed: a plain result
    np.testing.assert_allclose(to_numpy(out.data), np.einsum("bsi,oi->bso", x, weight) + bias, rtol=1e-12)
    upstream = rng.normal(size=(2, 3, 5))
    got_x, got_w, got_b = backward_with(linear, upstream, x, weight, bias)
    np.testing.assert_allclose(got_x, np.einsum("bso,oi->bsi", upstream, weight), rtol=1e-12)
    np.testing.assert_allclose(got_w, np.einsum("bso,bsi->oi", upstream, x), rtol=1e-12)
    np.testing.assert_allclose(got_b, upstream.sum(axis=(0, 1)), rtol=1e-12)
    check_gradients(linear, x, weight, bias)
    tensors = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
    assert linear(*tensors)._op == "linear"  # one node, not the composed form


# ------------------------------------------------------------------------------------ masked-LM loss
def reference_masked_loss(logits, targets):
    rows = [(logit, t) for logit, t in zip(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) if t != -100]
    losses = [np.log(np.exp(logit - logit.max()).sum()) + logit.max() - logit[t] for logit, t in rows]
    return sum(losses) / len(losses)


def test_masked_cross_entropy_ignores_minus_100_and_averages_over_the_rest():
    logits = rng.normal(size=(2, 5, 7))
    targets = np.array([[3, -100, -100, 0, 6], [-100, -100, 2, -100, 2]])
    loss = masked_softmax_cross_entropy(Tensor(logits), targets)
    np.testing.assert_allclose(loss.item(), reference_masked_loss(logits, targets), rtol=1e-12)
    (got,) = backward_with(lambda a: masked_softmax_cross_entropy(a, targets), 1.0, logits)
    counted = targets != -100
    softmax = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    expected = (softmax - np.eye(7)[np.where(counted, targets, 0)]) * counted[..., None] / counted.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    check_gradients(lambda a: masked_softmax_cross_entropy(a, targets), logits)
    nothing = masked_softmax_cross_entropy(Tensor(logits, requires_grad=True), np.full((2, 5), -100))
    assert nothing.item() == 0.0  # no position to predict: loss 0, not nan


def test_masked_lm_loss_checks_targets_and_matches_cross_entropy_when_nothing_is_ignored():
    logits = Tensor(rng.normal(size=(3, 4, 5)).astype(np.float32))
    targets = rng.integers(0, 5, size=(3, 4))
    np.testing.assert_allclose(nn.masked_lm_cross_entropy(logits, targets).item(),
                               nn.cross_entropy(logits.reshape(12, 5), targets.reshape(12)).item(), rtol=1e-6)
    for bad, match in [(np.full((3, 4), 5), "in \\[0, 5\\) or -100"), (np.full((3, 4), -1), "-100"),
                       (np.zeros((3, 5), int), "shape \\(3, 4\\)"), (np.zeros((3, 4)), "integer")]:
        with pytest.raises(ValueError, match=match):
            nn.masked_lm_cross_entropy(logits, bad)
