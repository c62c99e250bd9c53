"""Layers and the two networks of the course (an MLP and the article's CNN), shaped like ``torch.nn``.

A ``Module`` finds its parameters by looking at its attributes: a ``Tensor`` that requires grad is a
parameter, a ``Module`` (or a list of them) is searched in turn, and names are joined with dots,
so an ``MLP`` has parameters ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ... and a
``CNN`` has ``conv1.weight``, ``conv1.bias``, ``conv2.weight``, ..., ``fc2.bias``.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.functional import conv2d, flatten, linear, max_pool2d, softmax_cross_entropy

__all__ = ["Module", "Linear", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Sequential", "MLP", "CNN", "cross_entropy"]


class Module:
    """Base class: subclasses set parameters and sub-modules as attributes and define ``forward``."""

    def forward(self, *inputs: Any) -> Tensor:
        raise NotImplementedError

    def __call__(self, *inputs: Any) -> Tensor:
        return self.forward(*inputs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Yield ``(name, parameter)`` in the order the attributes were set."""
        for attribute, value in vars(self).items():
            name = f"{prefix}{attribute}"
            if isinstance(value, Tensor) and value.requires_grad:
                yield name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix=f"{name}.")
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_parameters(prefix=f"{name}.{index}.")

    def parameters(self) -> list[Tensor]:
        """All parameters, as a list (what an optimizer takes)."""
        return [parameter for _, parameter in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set it to None, as PyTorch does by default)."""
        for parameter in self.parameters():
            parameter.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Parameter name to a host (NumPy) copy of its values."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy values in by name; every name and shape is checked before anything is changed."""
        parameters = dict(self.named_parameters())
        missing = sorted(set(parameters) - set(state))
        unexpected = sorted(set(state) - set(parameters))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match the model: missing {missing}, unexpected {unexpected}")
        for name, parameter in parameters.items():
            if tuple(state[name].shape) != parameter.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {tuple(state[name].shape)}, the parameter has {parameter.shape}"
                )
        for name, parameter in parameters.items():
            parameter.data[...] = backend.asarray(state[name], dtype=parameter.dtype)


def _uniform(rng: Any, bound: float, shape: tuple[int, ...], dtype: Any) -> Tensor:
    """A parameter drawn uniformly from [-bound, bound] on the host (so seeds agree across backends)."""
    values = rng.uniform(-bound, bound, size=shape)
    return Tensor(backend.asarray(values, dtype=dtype or backend.default_dtype()), requires_grad=True)


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
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, out_features={out_features}")
        self.in_features = in_features
        self.out_features = out_features
        rng = rng if rng is not None else backend.generator(seed)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = _uniform(rng, bound, (out_features, in_features), dtype)
        self.bias = _uniform(rng, bound, (out_features,), dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        # x @ weight.T + bias, as one fused operation (see functional.linear)
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
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if min(in_channels, out_channels, *kernel) < 1 or len(kernel) != 2 or stride < 1 or padding < 0:
            raise ValueError(f"Conv2d needs positive channels and kernel, stride >= 1 and padding >= 0, got "
                             f"{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}, padding={padding}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding = stride, padding
        rng = rng if rng is not None else backend.generator(seed)
        fan_in = in_channels * kernel[0] * kernel[1]
        a = math.sqrt(5)
        gain = math.sqrt(2.0 / (1 + a * a))
        self.weight = _uniform(rng, gain * math.sqrt(3.0 / fan_in), (out_channels, in_channels, *kernel), dtype)
        self.bias = _uniform(rng, 1.0 / math.sqrt(fan_in), (out_channels,), dtype) if bias else None

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
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride

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


class MLP(Sequential):
    """Linear/ReLU stacks for the given widths, e.g. ``MLP([784, 256, 256, 10])``.

    No activation follows the last layer: it outputs logits for ``cross_entropy``. All layers draw
    from one generator, seeded by ``seed`` (or the library-wide one), so a seed fixes the model.
    """

    def __init__(self, sizes: Sequence[int], seed: int | None = None, dtype: Any = None) -> None:
        sizes = [int(size) for size in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP needs at least two positive sizes, got {sizes}")
        rng = backend.generator(seed)
        layers: list[Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(fan_in, fan_out, rng=rng, dtype=dtype))
            if index < len(sizes) - 2:
                layers.append(ReLU())
        super().__init__(*layers)
        self.sizes = sizes


class CNN(Module):
    """The article's MNIST network, the one its PyTorch code trained.

    conv1 1→20 (5×5), ReLU, max-pool 2, conv2 20→50 (5×5), ReLU, max-pool 2, flatten (50·4·4 = 800),
    fc1 800→500, ReLU, fc2 500→10 (logits). Parameters ``conv1.weight``, ``conv1.bias``,
    ``conv2.*``, ``fc1.*``, ``fc2.*``, initialised as PyTorch does, all from one generator seeded
    by ``seed``. It takes images as NCHW (batch, 1, 28, 28) or flat (batch, 784), as the training
    loop gives them.
    """

    def __init__(self, seed: int | None = None, dtype: Any = None) -> None:
        rng = backend.generator(seed)
        self.conv1 = Conv2d(1, 20, 5, rng=rng, dtype=dtype)
        self.conv2 = Conv2d(20, 50, 5, rng=rng, dtype=dtype)
        self.fc1 = Linear(800, 500, rng=rng, dtype=dtype)
        self.fc2 = Linear(500, 10, rng=rng, dtype=dtype)
        self.pool = MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(x.shape[0], 1, 28, 28)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNN expects images of shape (batch, 784) or (batch, 1, 28, 28), got {x.shape}")
        # max-pool then ReLU equals ReLU then max-pool (both keep the larger value), values and
        # gradients alike; this order does the ReLU on a quarter of the values.
        x = self.pool(self.conv1(x)).relu()
        x = self.pool(self.conv2(x)).relu()
        x = self.fc1(flatten(x)).relu()
        return self.fc2(x)

    def __repr__(self) -> str:
        layers = [self.conv1, "ReLU()", self.pool, self.conv2, "ReLU()", self.pool, "Flatten()", self.fc1, "ReLU()",
                  self.fc2]
        return "CNN(\n" + "\n".join(f"  {layer}" for layer in layers) + "\n)"


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean over the batch of -log softmax(logits)[target], for integer class labels.

    It equals ``-(logits.log_softmax(axis=1) * one_hot(targets)).sum() / batch``, computed as one
    fused operation (``functional.softmax_cross_entropy``) whose gradient is (softmax − one_hot)/batch.
    The log-sum-exp trick keeps logits of ±1e4 finite.
    """
    targets = backend.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (batch, classes), got {logits.shape}")
    batch = logits.shape[0]
    if targets.shape != (batch,) or targets.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects {batch} integer targets, got shape {targets.shape} of {targets.dtype}")
    classes = logits.shape[1]
    if batch and bool(((targets < 0) | (targets >= classes)).any()):  # a -1 would index the last class; one wait on a GPU
        raise ValueError(f"cross_entropy targets must be class indices in [0, {classes}), "
                         f"got values from {int(targets.min())} to {int(targets.max())}")
    return softmax_cross_entropy(logits, targets)
