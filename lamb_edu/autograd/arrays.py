"""The arrays a ``Tensor`` holds: made on the active backend, checked to be real numbers, and gradients
summed back over broadcast axes (so each gradient has its operand's shape)."""

from __future__ import annotations

import contextlib
from typing import Any

from lamb_edu import backend

__all__ = ["as_array", "numeric", "unbroadcast"]


def as_array(data: Any, dtype: Any = None) -> Any:
    """An array on the active backend; Python numbers and integer data become the default dtype."""
    is_array = hasattr(data, "dtype") and hasattr(data, "shape")
    array = backend.asarray(data, dtype=dtype)
    if dtype is None and (not is_array or array.dtype.kind not in "fc"):
        array = array.astype(backend.default_dtype(), copy=False)
    return array


def numeric(value: Any, what: str) -> Any:
    """``value`` (an array, a list, a number) if it holds real numbers, else ValueError
    (NumPy would read the string "1" as 1.0)."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # an array (NumPy or CuPy) or a NumPy scalar
    if kind is None and not isinstance(value, (str, bytes)):  # a number or a list: typed on the host
        with contextlib.suppress(TypeError, ValueError):
            kind = backend.np.asarray(value).dtype.kind
    if kind is None or kind not in "fiu":
        raise ValueError(f"{what} must be real numbers, got {value!r:.80}")
    return value


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving it ``shape``."""
    if grad.shape == shape:
        return grad
    extra_axes = grad.ndim - len(shape)
    if extra_axes:
        grad = grad.sum(axis=tuple(range(extra_axes)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
