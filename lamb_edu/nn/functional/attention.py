"""``scaled_dot_product_attention``: softmax(q·kᵀ/√d [+ mask])·v, one graph node with its gradient by hand."""

from __future__ import annotations

import math
from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["scaled_dot_product_attention"]


def _add_mask(scores: Any, mask: Any) -> Any:
    """Scores with ``mask`` applied: added when it holds numbers, −inf where a boolean mask is False."""
    mask = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if mask.dtype.kind == "b":
        return xp.where(mask, scores, -xp.inf)
    scores += mask.astype(scores.dtype, copy=False)
    return scores


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None) -> Tensor:
    """softmax(q·kᵀ/√d_head [+ mask])·v for q, k, v of shape (batch, heads, seq, d_head).

    As ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``: a boolean mask
    says which keys each query may attend to (True: attend), a float mask is added to the scores;
    either broadcasts to (batch, heads, seq_q, seq_k). The softmax subtracts each row's maximum
    first, so large scores do not overflow. With p the attention weights kept from the forward pass
    and dout the gradient of the result: grad_v = pᵀ·dout, dp = dout·vᵀ, ds = p·(dp − Σ_k dp·p)/√d_head,
    grad_q = ds·k and grad_k = dsᵀ·q; no (seq, seq) array beyond p and ds is made.
    """
    if q.ndim < 2 or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention expects q (..., seq_q, d), k and v (..., seq_k, d) "
                         f"with the same leading axes, got {q.shape}, {k.shape}, {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q.data @ xp.swapaxes(k.data, -1, -2)
    scores *= scale
    if mask is not None:
        scores = _add_mask(scores, mask)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = xp.exp(scores, out=scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    out = q._result(weights @ v.data, (q, k, v), "attention")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = out.grad
        if v.requires_grad:
            v._accumulate(xp.swapaxes(weights, -1, -2) @ grad)
        if q.requires_grad or k.requires_grad:
            ds = grad @ xp.swapaxes(v.data, -1, -2)  # dp, turned into ds in place
            ds -= xp.einsum("...ij,...ij->...i", ds, weights)[..., None]
            ds *= weights
            ds *= scale
            if q.requires_grad:
                q._accumulate(ds @ k.data)
            if k.requires_grad:
                k._accumulate(xp.swapaxes(ds, -1, -2) @ q.data)

    out._backward = _backward
    return out
