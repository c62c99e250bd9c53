"""Layers for a multilayer perceptron, shaped like ``torch.nn``.

A ``Module`` finds its parameters by looking at its attributes: a ``Tensor`` that requires grad is a
parameter, a ``Module`` (or a list of them) is searched in turn, and names are joined with dots,
so an ``MLP`` has parameters ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ...
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

from lamb_edu import backend
from lamb_edu.autograd import Tensor, linear, softmax_cross_entropy

__all__ = ["Module", "Linear", "ReLU", "Sequential", "MLP", "cross_entropy"]


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
        dtype = dtype or backend.default_dtype()
        bound = 1.0 / math.sqrt(in_features)
        weight = rng.uniform(-bound, bound, size=(out_features, in_features))
        self.weight = Tensor(backend.asarray(weight, dtype=dtype), requires_grad=True)
        self.bias = None
        if bias:
            self.bias = Tensor(backend.asarray(rng.uniform(-bound, bound, size=out_features), dtype=dtype), requires_grad=True)

    def forward(self, x: Tensor) -> Tensor:
        # x @ weight.T + bias, as one fused operation (see autograd.linear)
        return linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()

    def __repr__(self) -> str:
        return "ReLU()"


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


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean over the batch of -log softmax(logits)[target], for integer class labels.

    It equals ``-(logits.log_softmax(axis=1) * one_hot(targets)).sum() / batch``, computed as one
    fused operation (``autograd.softmax_cross_entropy``) whose gradient is (softmax − one_hot)/batch.
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
