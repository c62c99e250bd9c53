"""Attention as graph operations, each one node with its gradient written by hand.

``scaled_dot_product_attention(q, k, v, mask)`` is softmax(q·kᵀ/√d_head [+ mask])·v over
(batch, heads, seq, d_head). ``self_attention`` is what a BERT layer does before its output
projection: the query, key and value projections of x, split into heads, attended and joined
again, in one node, so that the three projections are one matrix product and no reshaped or
transposed copy of q, k, v is made. Both share the softmax's forward and backward below.
"""

from __future__ import annotations

import math
from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.nn.functional.blocks import for_blocks

__all__ = ["scaled_dot_product_attention", "self_attention"]


def _attention_weights(q: Any, k: Any, scale: float, mask: Any, out: Any = None) -> Any:
    """p = softmax(q·kᵀ·scale [+ mask]) over the last axis, each row shifted by its maximum first.

    ``mask`` is an array of the scores' shape (or broadcasting to it); the result goes into ``out``
    when given (an array of the scores' shape).
    """
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2), out=out)
    scores *= scale
    if mask is not None:
        if mask.dtype.kind == "b":  # True: attend; False: weight 0
            xp.copyto(scores, -xp.inf, where=xp.logical_not(mask))
        else:
            scores += mask
    scores -= scores.max(axis=-1, keepdims=True)
    weights = xp.exp(scores, out=scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights


def _as_mask(mask: Any, dtype: Any) -> Any:
    """A mask as an array on the backend: boolean ones as they are, others in the scores' dtype."""
    if mask is None:
        return None
    mask = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    return mask if mask.dtype.kind == "b" else mask.astype(dtype, copy=False)


def _attention_grads(q: Any, k: Any, v: Any, weights: Any, grad: Any, scale: float) -> tuple[Any, Any, Any]:
    """grad_q, grad_k, grad_v of p·v given the gradient of the result: grad_v = pᵀ·grad, dp = grad·vᵀ,
    ds = p·(dp − Σ_k dp·p)·scale, grad_q = ds·k, grad_k = dsᵀ·q."""
    grad_v = xp.swapaxes(weights, -1, -2) @ grad
    ds = grad @ xp.swapaxes(v, -1, -2)  # dp, turned into ds in place
    ds -= xp.einsum("...ij,...ij->...i", ds, weights)[..., None]
    ds *= weights
    ds *= scale
    return ds @ k, xp.swapaxes(ds, -1, -2) @ q, grad_v


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None) -> Tensor:
    """softmax(q·kᵀ/√d_head [+ mask])·v for q, k, v of shape (batch, heads, seq, d_head).

    As ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``: a boolean mask
    says which keys each query may attend to (True: attend), a float mask is added to the scores;
    either broadcasts to (batch, heads, seq_q, seq_k). The softmax subtracts each row's maximum
    first, so large scores do not overflow. With p the attention weights kept from the forward pass
    and dout the gradient of the result: grad_v = pᵀ·dout, dp = dout·vᵀ, ds = p·(dp − Σ_k dp·p)/√d_head,
    grad_q = ds·k and grad_k = dsᵀ·q.
    """
    if q.ndim < 2 or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention expects q (..., seq_q, d), k and v (..., seq_k, d) "
                         f"with the same leading axes, got {q.shape}, {k.shape}, {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    weights = _attention_weights(q.data, k.data, scale, _as_mask(mask, q.dtype))
    out = q._result(weights @ v.data, (q, k, v), "attention")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grads = _attention_grads(q.data, k.data, v.data, weights, out.grad, scale)
        for tensor, grad in zip((q, k, v), grads):
            tensor._accumulate(grad)

    out._backward = _backward
    return out


def self_attention(x: Tensor, projections: list[tuple[Tensor, Tensor]], n_heads: int, mask: Any = None) -> Tensor:
    """The heads of multi-head self-attention, joined: (batch, seq, D) to (batch, seq, D), one node.

    ``projections`` is [(query.weight, query.bias), (key.weight, key.bias), (value.weight, value.bias)],
    weights (D, D). The composed form, which the tests check it against, is
    ``scaled_dot_product_attention(split(linear(x, Wq, bq)), split(linear(x, Wk, bk)), split(linear(x, Wv, bv)))``
    joined back, where split makes (batch, heads, seq, d_head). Here the three projections are one
    product with the stacked (3D, D) weight, and q, k, v are views of it; the attention runs over
    blocks of a few sequences (``blocks.for_blocks``, shared between threads), so each block's
    scores stay in cache; on the way back the gradients of q, k, v are gathered into one
    (batch·seq, 3D) array: one product gives grad_x and one the three weights' gradients.
    """
    batch, seq, d_model = x.shape
    d_head = d_model // n_heads
    weight = xp.concatenate([w.data for w, _ in projections])  # (3D, D): a small copy, once per step
    bias = xp.concatenate([b.data for _, b in projections])
    rows = x.data.reshape(batch * seq, d_model)
    qkv = rows @ weight.T
    qkv += bias
    q, k, v = qkv.reshape(batch, seq, 3, n_heads, d_head).transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, d_head)
    scale = 1.0 / math.sqrt(d_head)
    mask = _as_mask(mask, qkv.dtype)
    mask = None if mask is None else xp.broadcast_to(mask, (batch, n_heads, seq, seq))
    weights = xp.empty((batch, n_heads, seq, seq), dtype=qkv.dtype)
    joined = xp.empty((batch, seq, n_heads, d_head), dtype=qkv.dtype)

    def attend(block: slice) -> None:
        p = _attention_weights(q[block], k[block], scale, None if mask is None else mask[block], out=weights[block])
        joined[block] = (p @ v[block]).transpose(0, 2, 1, 3)

    for_blocks(attend, batch, n_heads * seq * seq)
    parents = (x, *(tensor for pair in projections for tensor in pair))
    out = x._result(joined.reshape(batch, seq, d_model), parents, "self_attention")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = out.grad.reshape(batch, seq, n_heads, d_head).transpose(0, 2, 1, 3)
        grad_qkv = xp.empty((batch, seq, 3, n_heads, d_head), dtype=qkv.dtype)
        grad_heads = grad_qkv.transpose(2, 0, 3, 1, 4)

        def attend_back(block: slice) -> None:
            parts = _attention_grads(q[block], k[block], v[block], weights[block], grad[block], scale)
            for index, part in enumerate(parts):
                grad_heads[index, block] = part

        for_blocks(attend_back, batch, n_heads * seq * seq)
        grad_rows = grad_qkv.reshape(batch * seq, 3 * d_model)
        if x.requires_grad:
            x._accumulate((grad_rows @ weight).reshape(x.shape))
        grad_weight, grad_bias = grad_rows.T @ rows, grad_rows.sum(axis=0)
        for index, (w, b) in enumerate(projections):
            part = slice(index * d_model, (index + 1) * d_model)
            w._accumulate(grad_weight[part])
            b._accumulate(grad_bias[part])

    out._backward = _backward
    return out
