"""``gelu``: the Gaussian error linear unit in its tanh approximation, one graph node with its gradient by hand."""

from __future__ import annotations

import math
from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.nn.functional.blocks import for_blocks

__all__ = ["gelu"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715


def _gelu_block(x: Any, s: Any, y: Any) -> None:
    """s = 0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³))) and y = x·s, written into ``s`` and ``y``."""
    xp.multiply(x, x, out=s)
    s *= _CUBIC * _SQRT_2_OVER_PI
    s += _SQRT_2_OVER_PI
    s *= x
    xp.tanh(s, out=s)
    s += 1.0
    s *= 0.5
    xp.multiply(x, s, out=y)


def _gelu_grad_block(x: Any, s: Any, y: Any, grad: Any, out: Any) -> None:
    """out = grad·(s + 2·y·(1 − s)·√(2/π)·(1 + 3·0.044715·x²)), the chain rule through ``_gelu_block``."""
    xp.multiply(x, x, out=out)
    out *= 6 * _CUBIC * _SQRT_2_OVER_PI
    out += 2 * _SQRT_2_OVER_PI
    rest = xp.subtract(1.0, s)
    rest *= y
    out *= rest
    out += s
    out *= grad


def gelu(x: Tensor) -> Tensor:
    """0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), elementwise: PyTorch's ``gelu(x, approximate="tanh")``.

    With s = 0.5·(1 + t), t the tanh, kept from the forward pass and y = x·s the result: since
    1 − t² = 4·s·(1 − s), the derivative 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)
    is s + 2·y·(1 − s)·√(2/π)·(1 + 3·0.044715·x²). Both passes run in cache-sized blocks
    (``blocks.for_blocks``), writing into arrays they already have.
    """
    data = xp.ascontiguousarray(x.data).reshape(-1)
    s, y = xp.empty_like(data), xp.empty_like(data)
    for_blocks(lambda block: _gelu_block(data[block], s[block], y[block]), data.shape[0], 1)
    out = x._result(y.reshape(x.shape), (x,), "gelu")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = xp.ascontiguousarray(out.grad).reshape(-1)
        result = xp.empty_like(data)
        for_blocks(lambda block: _gelu_grad_block(data[block], s[block], y[block], grad[block], result[block]),
                   data.shape[0], 1)
        x._accumulate(result.reshape(x.shape))

    out._backward = _backward
    return out
