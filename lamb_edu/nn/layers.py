"""The layers of the course's networks, shaped like ``torch.nn``: ``Linear``, ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``Flatten`` and ``Sequential``. Layers are initialised as PyTorch's are.
"""

from __future__ import annotations

import math
from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import conv2d, flatten, linear, max_pool2d
from lamb_edu.nn.functional.conv import check_pool_window
from lamb_edu.nn.module import Module, check_size, uniform_parameter

__all__ = ["Linear", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Sequential"]


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features).

    Initialised like ``torch.nn.Linear``: weight and bias uniform in ±1/sqrt(in_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        seed: int | None = None,
        dtype: Any = None,
        rng: Any = None,
    ) -> None:
        self.in_features = check_size("Linear in_features", in_features)
        self.out_features = out_features = check_size("Linear out_features", out_features)
        rng = rng if rng is not None else backend.generator(seed)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = uniform_parameter(rng, bound, (out_features, in_features), dtype)
        self.bias = uniform_parameter(rng, bound, (out_features,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        # x @ weight.T + bias, as one one graph node (see functional.linear)
        return linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


class Conv2d(Module):
    """2-D convolution of NCHW images (see ``functional.conv2d``); ``kernel_size`` is k or (kh, kw).

    ``weight`` is (out_channels, in_channels, kh, kw) and ``bias`` (out_channels,). Initialised like
    ``torch.nn.Conv2d``: Kaiming-uniform with a = sqrt(5), a bound of gain·sqrt(3 / fan_in) with
    gain = sqrt(2 / (1 + a²)), which is 1/sqrt(fan_in) for fan_in = in_channels·kh·kw; the bias
    uniform in ±1/sqrt(fan_in).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, bias: bool = True, seed: int | None = None, dtype: Any = None,
                 rng: Any = None) -> None:
        in_channels = check_size("Conv2d in_channels", in_channels)
        out_channels = check_size("Conv2d out_channels", out_channels)
        kernel = (kernel_size, kernel_size) if not isinstance(kernel_size, (tuple, list)) else tuple(kernel_size)
        if len(kernel) != 2:
            raise ValueError(f"invalid Conv2d kernel_size: {kernel_size!r} (must be k or (kh, kw))")
        kernel = (check_size("Conv2d kernel_size", kernel[0]), check_size("Conv2d kernel_size", kernel[1]))
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride = check_size("Conv2d stride", stride)
        self.padding = check_size("Conv2d padding", padding, minimum=0)
        rng = rng if rng is not None else backend.generator(seed)
        fan_in = in_channels * kernel[0] * kernel[1]
        a = math.sqrt(5)
        gain = math.sqrt(2.0 / (1 + a * a))
        shape = (out_channels, in_channels, *kernel)
        self.weight = uniform_parameter(rng, gain * math.sqrt(3.0 / fan_in), shape, dtype)
        self.bias = uniform_parameter(rng, 1.0 / math.sqrt(fan_in), (out_channels,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        try:
            return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        except ValueError as error:  # say which layer met the bad input
            raise ValueError(f"{self!r}: {error}") from None

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()

    def __repr__(self) -> str:
        return "ReLU()"


class MaxPool2d(Module):
    """The maximum over each ``kernel_size``² window (see ``functional.max_pool2d``)."""

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        kernel_size = check_size("MaxPool2d kernel_size", kernel_size)
        stride = kernel_size if stride is None else check_size("MaxPool2d stride", stride)
        check_pool_window(kernel_size, stride)  # refused here, not at the first forward pass
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Tensor) -> Tensor:
        try:
            return max_pool2d(x, self.kernel_size, self.stride)
        except ValueError as error:
            raise ValueError(f"{self!r}: {error}") from None

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class Flatten(Module):
    """(N, C, H, W) to (N, C·H·W), the bridge from convolutions to linear layers."""

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x)

    def __repr__(self) -> str:
        return "Flatten()"


class Sequential(Module):
    """Apply modules one after another; they are stored in ``self.layers``."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}(\n{inner}\n)"
