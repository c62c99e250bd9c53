"""``layer_norm`` over the last axis, one graph node with its gradient written by hand."""

from __future__ import annotations

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["layer_norm"]


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """(x − mean) / √(var + eps) · weight + bias, with mean and (biased) variance over the last axis.

    As ``torch.nn.functional.layer_norm(x, (dim,), weight, bias, eps)``. With x̂ the normalised input
    and r = 1/√(var + eps) kept from the forward pass, and g = grad·weight, the backward pass is
    grad_x = r·(g − mean(g) − x̂·mean(g·x̂)) (means over the last axis), grad_weight = Σ grad·x̂ and
    grad_bias = Σ grad over every leading axis.
    """
    dim = x.shape[-1]
    if weight.shape != (dim,) or bias.shape != (dim,):
        raise ValueError(f"layer_norm over {dim} features needs weight and bias of shape ({dim},), "
                         f"got {weight.shape} and {bias.shape}")
    normalised = x.data - x.data.mean(axis=-1, keepdims=True)
    variance = xp.einsum("...i,...i->...", normalised, normalised)[..., None]
    variance *= 1.0 / dim
    variance += eps
    rstd = xp.sqrt(variance, out=variance)
    xp.reciprocal(rstd, out=rstd)
    normalised *= rstd  # x̂
    result = normalised * weight.data
    result += bias.data
    out = x._result(result, (x, weight, bias), "layer_norm")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = out.grad
        leading = grad.reshape(-1, dim)
        if weight.requires_grad:
            weight._accumulate(xp.einsum("ni,ni->i", leading, normalised.reshape(-1, dim)))
        if bias.requires_grad:
            bias._accumulate(leading.sum(axis=0))
        if x.requires_grad:
            g = grad * weight.data
            mean_g = g.mean(axis=-1, keepdims=True)
            mean_gx = xp.einsum("...i,...i->...", g, normalised)[..., None]
            mean_gx *= 1.0 / dim
            g -= mean_g
            g -= normalised * mean_gx
            g *= rstd
            x._accumulate(g)

    out._backward = _backward
    return out
