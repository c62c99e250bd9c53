"""``gelu``: the Gaussian error linear unit in its tanh approximation, one graph node with its gradient by hand."""

from __future__ import annotations

import math

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["gelu"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715


def gelu(x: Tensor) -> Tensor:
    """0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), elementwise: PyTorch's ``gelu(x, approximate="tanh")``.

    With t = tanh(√(2/π)·(x + 0.044715·x³)) kept from the forward pass, the derivative is
    0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). The passes over memory write into the
    arrays they already have (``out=``) instead of making a new temporary each.
    """
    data = x.data
    t = data * data
    t *= _CUBIC * _SQRT_2_OVER_PI
    t += _SQRT_2_OVER_PI
    t *= data  # √(2/π)·(x + 0.044715·x³)
    xp.tanh(t, out=t)
    result = t + 1.0
    result *= data
    result *= 0.5
    out = x._result(result, (x,), "gelu")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        # d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)
        slope = data * data
        slope *= 3 * _CUBIC * _SQRT_2_OVER_PI
        slope += _SQRT_2_OVER_PI
        slope *= data
        square = t * t
        xp.subtract(1.0, square, out=square)
        slope *= square
        slope += t
        slope += 1.0
        slope *= 0.5
        slope *= out.grad
        x._accumulate(slope)

    out._backward = _backward
    return out
