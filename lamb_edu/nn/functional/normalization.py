"""``layer_norm`` over the last axis, one graph node with its gradient written by hand."""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.nn.functional.blocks import for_blocks

__all__ = ["layer_norm"]


def _normalise_block(x: Any, weight: Any, bias: Any, eps: float, x_hat: Any, rstd: Any, out: Any) -> None:
    """x̂ = (x − mean)·r with r = 1/√(var + eps), and out = x̂·weight + bias, for a block of rows."""
    xp.subtract(x, x.mean(axis=-1, keepdims=True), out=x_hat)
    variance = xp.einsum("ij,ij->i", x_hat, x_hat)
    variance *= 1.0 / x.shape[-1]
    variance += eps
    xp.sqrt(variance, out=variance)
    xp.divide(1.0, variance, out=rstd)
    x_hat *= rstd[:, None]
    xp.multiply(x_hat, weight, out=out)
    out += bias


def _grad_x_block(grad: Any, weight: Any, x_hat: Any, rstd: Any, out: Any) -> None:
    """out = r·(g − mean(g) − x̂·mean(g·x̂)) with g = grad·weight, for a block of rows."""
    g = xp.multiply(grad, weight, out=out)
    mean_gx = xp.einsum("ij,ij->i", g, x_hat)
    mean_gx *= 1.0 / g.shape[-1]
    g -= g.mean(axis=-1, keepdims=True)
    g -= x_hat * mean_gx[:, None]
    g *= rstd[:, None]


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """(x − mean) / √(var + eps) · weight + bias, with mean and (biased) variance over the last axis.

    As ``torch.nn.functional.layer_norm(x, (dim,), weight, bias, eps)``. With x̂ the normalised input
    and r = 1/√(var + eps) kept from the forward pass, and g = grad·weight, the backward pass is
    grad_x = r·(g − mean(g) − x̂·mean(g·x̂)) (means over the last axis), grad_weight = Σ grad·x̂ and
    grad_bias = Σ grad over every leading axis. Rows are normalised in cache-sized blocks (``blocks.for_blocks``).
    """
    dim = x.shape[-1]
    if weight.shape != (dim,) or bias.shape != (dim,):
        raise ValueError(f"layer_norm over {dim} features needs weight and bias of shape ({dim},), "
                         f"got {weight.shape} and {bias.shape}")
    rows = x.data.reshape(-1, dim)
    x_hat, result = xp.empty_like(rows), xp.empty_like(rows)
    rstd = xp.empty(rows.shape[0], dtype=rows.dtype)
    for_blocks(lambda block: _normalise_block(rows[block], weight.data, bias.data, eps, x_hat[block], rstd[block],
                                              result[block]), rows.shape[0], dim)
    out = x._result(result.reshape(x.shape), (x, weight, bias), "layer_norm")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = out.grad.reshape(-1, dim)
        if weight.requires_grad:
            weight._accumulate(xp.einsum("ni,ni->i", grad, x_hat))
        if bias.requires_grad:
            bias._accumulate(grad.sum(axis=0))
        if x.requires_grad:
            grad_x = xp.empty_like(grad)
            for_blocks(lambda block: _grad_x_block(grad[block], weight.data, x_hat[block], rstd[block], grad_x[block]),
                       rows.shape[0], dim)
            x._accumulate(grad_x.reshape(x.shape))

    out._backward = _backward
    return out
