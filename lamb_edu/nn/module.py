"""``Module``: the base of every layer and network, shaped like ``torch.nn.Module``.

A ``Module`` finds its parameters by looking at its attributes: a ``Tensor`` that requires grad is a
parameter, a ``Module`` (or a list of them) is searched in turn, and names are joined with dots,
so an ``MLP`` has parameters ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ... and a
``CNN`` has ``conv1.weight``, ``conv1.bias``, ``conv2.weight``, ..., ``fc2.bias``.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from lamb_edu import backend
from lamb_edu.autograd import Tensor

__all__ = ["Module", "uniform_parameter"]


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


def uniform_parameter(rng: Any, bound: float, shape: tuple[int, ...], dtype: Any) -> Tensor:
    """A parameter drawn uniformly from [-bound, bound] on the host (so seeds agree across backends)."""
    values = rng.uniform(-bound, bound, size=shape)
    return Tensor(backend.asarray(values, dtype=dtype or backend.default_dtype()), requires_grad=True)
