"""``Module``: the base of every layer and network, shaped like ``torch.nn.Module``.

A ``Module`` finds its parameters by looking at its attributes: a ``Tensor`` that requires grad is a
parameter, a ``Module`` (or a list of them) is searched in turn, and names are joined with dots,
so an ``MLP`` has parameters ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ... and a
``CNN`` has ``conv1.weight``, ``conv1.bias``, ``conv2.weight``, ..., ``fc2.bias``.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator, Mapping

from lamb_edu import backend
from lamb_edu.autograd import Tensor

__all__ = ["Module", "uniform_parameter", "check_size"]


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
        """Copy values in by name; every entry is checked before any parameter changes.

        ``state`` must map exactly this model's parameter names to real-number arrays (NumPy, CuPy,
        nested lists) of the parameters' shapes whose values are finite in the parameter's dtype (a
        float64 1e300 would become inf in float32). Anything else raises ValueError naming the entry,
        and leaves every parameter as it was.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state_dict must be a dict of parameter name to array, got {type(state).__name__}")
        parameters = dict(self.named_parameters())
        missing = sorted(set(parameters) - set(state))
        unexpected = sorted(map(str, set(state) - set(parameters)))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match the model: missing {missing}, unexpected {unexpected}")
        values = {name: _checked_entry(name, state[name], parameter) for name, parameter in parameters.items()}
        for name, parameter in parameters.items():
            parameter.data[...] = values[name]


def _checked_entry(name: str, value: Any, parameter: Tensor) -> Any:
    """``value`` in the parameter's dtype on the active backend; ValueError naming ``name`` if it cannot be."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is None:  # a list or a number: look at it on the host first
        try:
            value = backend.np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"state_dict[{name!r}] is not an array of numbers ({error})") from None
        kind = value.dtype.kind
    if kind not in "fiu":
        raise ValueError(f"state_dict[{name!r}] has dtype {value.dtype}, not real numbers")
    if tuple(value.shape) != parameter.shape:
        raise ValueError(f"state_dict[{name!r}] has shape {tuple(value.shape)}, the parameter has {parameter.shape}")
    with backend.np.errstate(over="ignore"):  # an overflow is reported below, by name
        converted = backend.asarray(value, dtype=parameter.dtype)
    if not bool(backend.xp.isfinite(converted).all()):
        finite_before = bool(backend.np.isfinite(backend.to_numpy(value)).all())
        problem = f"values too large for {parameter.dtype}" if finite_before else "NaN or inf"
        raise ValueError(f"state_dict[{name!r}] holds {problem}")
    return converted


def check_size(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int; ValueError unless it is an integer (not 2.5, not True) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= {minimum})")
    return int(value)


def uniform_parameter(rng: Any, bound: float, shape: tuple[int, ...], dtype: Any) -> Tensor:
    """A parameter drawn uniformly from [-bound, bound] on the host (so seeds agree across backends)."""
    values = rng.uniform(-bound, bound, size=shape)
    return Tensor(backend.asarray(values, dtype=dtype or backend.default_dtype()), requires_grad=True)
