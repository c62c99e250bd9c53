"""Checks that run before an optimizer changes anything: hyperparameters, gradients, saved state.

Each raises an error that names the bad argument and its value (ValueError for a hyperparameter,
FloatingPointError for a NaN/inf gradient, or one so large that its square overflows), so a failed
call leaves every parameter and all state as they were.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = [
    "check_non_negative", "check_positive", "check_fraction", "check_beta", "check_betas", "check_flag",
    "check_optional_positive", "all_finite", "squares_finite", "all_finite_together", "describe_parameter",
    "check_gradient",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_non_negative(name: str, value: Any) -> None:
    """ValueError unless ``value`` is a finite number >= 0 (lr, weight_decay, eps, ...)."""
    if not _is_number(value) or not 0 <= value < math.inf:
        raise ValueError(f"invalid {name}: {value!r} (must be a finite number >= 0)")


def check_positive(name: str, value: Any) -> None:
    """ValueError unless ``value`` is a finite number > 0."""
    if not _is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"invalid {name}: {value!r} (must be a finite number > 0)")


def check_optional_positive(name: str, value: Any, meaning: str) -> None:
    """ValueError unless ``value`` is None (``meaning``) or a finite number > 0."""
    if value is not None and (not _is_number(value) or not 0 < value < math.inf):
        raise ValueError(f"invalid {name}: {value!r} (must be a finite number > 0, or None for {meaning})")


def check_fraction(name: str, value: Any) -> None:
    """ValueError unless ``0 <= value <= 1`` (a momentum or a dampening: more than 1 makes steps grow)."""
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"invalid {name}: {value!r} (must be in [0, 1])")


def check_beta(name: str, value: Any) -> None:
    """ValueError unless ``0 <= value < 1`` (a decay rate of a running average)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"invalid {name}: {value!r} (must be in [0, 1))")


def check_betas(betas: Any) -> None:
    """ValueError unless ``betas`` is a pair of decay rates in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    check_beta("betas[0]", betas[0])
    check_beta("betas[1]", betas[1])


def check_flag(name: str, value: Any) -> None:
    """ValueError unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"invalid {name}: {value!r} (must be True or False)")


def all_finite(array: Any) -> bool:
    """True when ``array`` has no NaN or inf, in one pass over it: the sum of squares ``array·array``.

    A NaN or inf anywhere makes that sum NaN or inf, so a finite sum proves every element finite.
    A non-finite sum may also come from huge finite values overflowing the square, so only then do
    max and min decide exactly (a NaN makes max NaN, +inf shows in max, -inf in min). One reduction
    instead of two, and no temporary array (``isfinite(array).all()`` would make a mask as big as the
    gradient).
    """
    if math.isfinite(float(xp.vdot(array, array))):
        return True
    return math.isfinite(float(array.max())) and math.isfinite(float(array.min()))


def squares_finite(array: Any) -> bool:
    """True when every element's square is finite: no NaN or inf, and |x| <= √(largest value of the dtype).

    Adam's v ← β2·v + (1 − β2)·g² (and every rule that squares g) turns a finite g above that bound
    (1.8e19 in float32) into v = inf, and the parameter then never moves again. A finite sum of
    squares proves every square finite; only when it is not do max and min decide.
    """
    if math.isfinite(float(xp.vdot(array, array))):
        return True
    high, low = float(array.max()), float(array.min())
    bound = math.sqrt(float(xp.finfo(array.dtype).max))
    return math.isfinite(high) and math.isfinite(low) and max(high, -low) <= bound


def all_finite_together(arrays: Sequence[Any], squares: bool = False) -> bool:
    """True when no array has a NaN or inf (with ``squares``, no element whose square overflows either).

    ``all_finite`` (or ``squares_finite``) with one sum for them all: the sums of squares are added on
    the device and read once, so checking a model's gradients waits for a GPU once per step, not once
    per tensor. Only a non-finite total (a NaN, an inf or an overflow) is looked into array by array.
    """
    if not arrays:
        return True
    total = xp.vdot(arrays[0], arrays[0])
    for array in arrays[1:]:
        total = total + xp.vdot(array, array)
    each = squares_finite if squares else all_finite
    return math.isfinite(float(total)) or all(each(array) for array in arrays)


def describe_parameter(group: Mapping[str, Any], group_index: int, index: int) -> str:
    """'parameter 1 of group 0 (shape (4, 5), name layers.0.weight)' for error messages."""
    p = group["params"][index]
    names = group.get("param_names")
    name = f", name {names[index]!r}" if names else ""
    return f"parameter {index} of group {group_index} (shape {p.shape}{name})"


def check_gradient(grad: Any, group: Mapping[str, Any], group_index: int, index: int, finite: bool = True,
                   squares: bool = False) -> None:
    """Raise unless ``grad`` is a floating array of its parameter's shape with no NaN or inf.

    ValueError for a wrong type, dtype or shape (a (4,) gradient of a (3, 4) parameter would
    otherwise be broadcast silently); FloatingPointError (checked only if ``finite``) for NaN/inf and,
    with ``squares`` (for a rule that squares g), for an element whose square overflows (``squares_finite``).
    """
    dtype = getattr(grad, "dtype", None)
    if isinstance(grad, Tensor):  # it has a dtype and a shape, but is no array: NumPy fails deep inside
        problem = "is a Tensor, not an array (set p.grad = tensor.data)"
    elif dtype is None or not hasattr(grad, "shape"):
        problem = f"is a {type(grad).__name__}, not an array"
    elif dtype.kind != "f":
        problem = f"has dtype {dtype}, not a floating type"
    elif tuple(grad.shape) != tuple(group["params"][index].shape):
        problem = f"has shape {tuple(grad.shape)}, not the parameter's shape"
    elif finite and not all_finite(grad):
        raise FloatingPointError(f"the gradient of {describe_parameter(group, group_index, index)} contains NaN "
                                 "or inf; no parameter or optimizer state was changed")
    elif finite and squares and not squares_finite(grad):
        largest = max(float(grad.max()), -float(grad.min()))
        raise FloatingPointError(f"the gradient of {describe_parameter(group, group_index, index)} holds "
                                 f"{largest:.3g}, whose square overflows {dtype} (the second moment would become "
                                 "inf); no parameter or optimizer state was changed")
    else:
        return
    raise ValueError(f"the gradient of {describe_parameter(group, group_index, index)} {problem}")
