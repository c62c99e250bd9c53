"""A tiny reverse-mode autograd over arrays, in the spirit of micrograd.

- ``tensor.py``: ``Tensor``, its operations and ``backward()`` (read this one first);
- ``grad_mode.py``: ``no_grad()``, ``is_grad_enabled()``;
- ``arrays.py``: making a tensor's array, and summing a gradient back over broadcast axes;
- ``hooks.py``: when a leaf's gradient is final during ``backward()`` (its post-accumulate-grad hooks).
"""

from lamb_edu.autograd.grad_mode import is_grad_enabled, no_grad
from lamb_edu.autograd.tensor import Tensor

__all__ = ["Tensor", "no_grad", "is_grad_enabled"]
