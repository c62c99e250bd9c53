"""``LayerNorm``: normalisation over the last axis with a learned scale γ and shift β, as ``torch.nn.LayerNorm``."""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import layer_norm
from lamb_edu.nn.init import constant_parameter
from lamb_edu.nn.module import Module

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """(x − mean) / √(var + eps) · weight + bias over the last axis of size ``dim``.

    ``weight`` (γ) starts at 1 and ``bias`` (β) at 0. ``eps`` is PyTorch's default 1e-5; BERT uses 1e-12.
    """

    def __init__(self, dim: int, eps: float = 1e-5, dtype: Any = None) -> None:
        if dim < 1 or not eps >= 0:
            raise ValueError(f"LayerNorm needs a positive size and eps >= 0, got dim={dim}, eps={eps}")
        self.dim, self.eps = dim, float(eps)
        self.weight = constant_parameter(1.0, (dim,), dtype)
        self.bias = constant_parameter(0.0, (dim,), dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"{self!r} expects inputs whose last axis has size {self.dim}, got shape {x.shape}")
        return layer_norm(x, self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim}, eps={self.eps:g})"
