"""A tiny reverse-mode autograd over arrays, in the spirit of micrograd.

A ``Tensor`` wraps an array (``.data``) and, when it takes part in a computation that needs
gradients, remembers its parents and a ``_backward`` function that turns the gradient of the output
into gradients of the inputs (the chain rule, one operation at a time). ``loss.backward()`` visits
the graph in reverse topological order, so a tensor used twice receives the sum of both
contributions before it passes its own gradient on.

Broadcasting works as in NumPy; on the way back each gradient is summed over the broadcast axes so
it has its operand's shape. Gradients have the dtype of the data: float32 in, float32 out.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

from lamb_edu import backend
from lamb_edu.autograd import grad_mode
from lamb_edu.autograd.arrays import as_array, numeric, unbroadcast
from lamb_edu.autograd.hooks import consumers_of_hooked_leaves, release_leaves
from lamb_edu.backend import xp

__all__ = ["Tensor"]


class Tensor:
    """An array with an optional gradient: ``Tensor(data, requires_grad=False)``."""

    __array_priority__ = 100  # make ndarray <op> Tensor defer to Tensor's reflected operator

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = data.data if isinstance(data, Tensor) else as_array(data, dtype)
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Callable[[], None] | None = None
        self._op = ""
        self._freed = False  # True once a backward pass has gone through this node and dropped its graph
        self._grad_hooks: list[Callable[[Tensor], None]] | None = None
        # where a leaf's gradient is written when it arrives (data parallelism's flat buffer), or None
        self.grad_buffer: Any = None

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return self.data.item()

    def numpy(self) -> Any:
        """The data as a NumPy array on the host."""
        return backend.to_numpy(self.data)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{grad})"

    def __len__(self) -> int:
        return len(self.data)

    # ------------------------------------------------------------ graph glue
    def _lift(self, other: Any) -> Tensor:
        """Wrap a number or array as a constant tensor of this tensor's dtype."""
        return other if isinstance(other, Tensor) else Tensor(other, dtype=self.data.dtype)

    def _result(self, data: Any, parents: tuple[Tensor, ...], op: str) -> Tensor:
        """A new tensor that remembers its parents when any of them needs a gradient."""
        out = Tensor(data)
        if grad_mode.is_grad_enabled() and any(parent.requires_grad for parent in parents):
            out.requires_grad = True
            out._parents = parents
            out._op = op
        return out

    def _accumulate(self, grad: Any) -> None:
        """Add ``grad`` to ``self.grad`` (a leaf used twice, or reached by two paths, gets the sum)."""
        # A new array each time: grad arrays may be shared between tensors, so never add in place.
        if self.requires_grad:
            self.grad = grad if self.grad is None else self.grad + grad

    def _grad_out(self) -> Any:
        """The array an operation may write this leaf's first gradient into (``out=``), or None.

        ``grad_buffer`` when set and no gradient has arrived yet: the gradient is then born in its
        slot of a flat buffer, with no copy (PyTorch DDP's ``gradient_as_bucket_view``).
        """
        return self.grad_buffer if self.grad is None and self.requires_grad else None

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Callable[[], None]:
        """Call ``hook(self)`` in each ``backward()`` once this leaf's ``.grad`` is final (as torch's hook of
        that name: data parallelism sends a gradient while backward goes on). Returns its remover."""
        if self._parents:
            raise RuntimeError("post-accumulate-grad hooks are for leaf tensors (parameters)")
        self._grad_hooks = [*(self._grad_hooks or ()), hook]
        return lambda: setattr(self, "_grad_hooks", [h for h in self._grad_hooks if h is not hook])

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self._accumulate(unbroadcast(out.grad, self.shape))
            other._accumulate(unbroadcast(out.grad, other.shape))

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            if self.requires_grad:
                self._accumulate(unbroadcast(out.grad * other.data, self.shape))
            if other.requires_grad:
                other._accumulate(unbroadcast(out.grad * self.data, other.shape))

        out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data / other.data, (self, other), "/")

        def _backward() -> None:
            if self.requires_grad:
                self._accumulate(unbroadcast(out.grad / other.data, self.shape))
            if other.requires_grad:
                grad_other = -out.grad * self.data / (other.data * other.data)
                other._accumulate(unbroadcast(grad_other, other.shape))

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        out = self._result(-self.data, (self,), "neg")

        def _backward() -> None:
            self._accumulate(-out.grad)

        out._backward = _backward
        return out

    def __sub__(self, other: Any) -> Tensor:
        return self + (-self._lift(other))

    def __radd__(self, other: Any) -> Tensor:
        return self + other

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self * other

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float)):
            raise TypeError(f"Tensor ** only takes a Python number as exponent, got {type(exponent).__name__}")
        out = self._result(self.data**exponent, (self,), f"**{exponent}")

        def _backward() -> None:
            self._accumulate(out.grad * exponent * self.data ** (exponent - 1))

        out._backward = _backward
        return out

    def __matmul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._result(self.data @ other.data, (self, other), "@")

        def _backward() -> None:
            # Treat a vector as a row (on the left) or a column (on the right): one rule for all.
            left = self.data if self.ndim > 1 else self.data[None, :]
            right = other.data if other.ndim > 1 else other.data[:, None]
            shape = list(out.grad.shape)
            if other.ndim == 1:
                shape.append(1)
            if self.ndim == 1:
                shape.insert(len(shape) - 1, 1)
            grad = out.grad.reshape(shape)
            if self.requires_grad:
                grad_left = unbroadcast(grad @ xp.swapaxes(right, -1, -2), left.shape)
                self._accumulate(grad_left.reshape(self.shape))
            if other.requires_grad:
                grad_right = unbroadcast(xp.swapaxes(left, -1, -2) @ grad, right.shape)
                other._accumulate(grad_right.reshape(other.shape))

        out._backward = _backward
        return out

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other) @ self

    # --------------------------------------------------------- elementwise
    def exp(self) -> Tensor:
        """e**x, elementwise; its gradient is the output itself."""
        out = self._result(xp.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self._accumulate(out.grad * out.data)

        out._backward = _backward
        return out

    def log(self) -> Tensor:
        """The natural logarithm, elementwise; its gradient is 1/x."""
        out = self._result(xp.log(self.data), (self,), "log")

        def _backward() -> None:
            self._accumulate(out.grad / self.data)

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        """max(x, 0), elementwise; the gradient passes where x > 0."""
        out = self._result(xp.maximum(self.data, 0), (self,), "relu")

        def _backward() -> None:
            self._accumulate(out.grad * (self.data > 0))

        out._backward = _backward
        return out

    def tanh(self) -> Tensor:
        """tanh(x), elementwise; its gradient is 1 − tanh(x)²."""
        out = self._result(xp.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self._accumulate(out.grad * (1 - out.data * out.data))

        out._backward = _backward
        return out

    # ---------------------------------------------------------- reductions
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The sum over ``axis`` (all axes when None); on the way back the gradient is broadcast back."""
        out = self._result(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward() -> None:
            grad = out.grad
            if axis is not None and not keepdims:
                grad = xp.expand_dims(grad, axis)
            self._accumulate(xp.ascontiguousarray(xp.broadcast_to(grad, self.shape)))

        out._backward = _backward
        return out

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """The mean over ``axis`` (all axes when None): the sum times 1/count.

        Over no elements it is NaN with a RuntimeWarning, as ``numpy.mean`` gives (not a ZeroDivisionError).
        """
        if axis is None:
            count = self.size
        else:
            axes = (axis,) if isinstance(axis, int) else tuple(axis)
            count = 1
            for a in axes:
                count *= self.shape[a]
        if count == 0:
            warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=2)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count if count else math.nan)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """log(softmax(x)) computed stably as (x - max) - log(sum(exp(x - max)))."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        log_sum_exp = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        out = self._result(shifted - log_sum_exp, (self,), "log_softmax")

        def _backward() -> None:
            softmax = xp.exp(out.data)
            self._accumulate(out.grad - softmax * out.grad.sum(axis=axis, keepdims=True))

        out._backward = _backward
        return out

    # -------------------------------------------------------------- shape
    def reshape(self, *shape: Any) -> Tensor:
        """The same values in a new shape (``t.reshape(2, 3)`` or ``t.reshape((2, 3))``)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        out = self._result(self.data.reshape(shape), (self,), "reshape")

        def _backward() -> None:
            self._accumulate(out.grad.reshape(self.shape))

        out._backward = _backward
        return out

    def transpose(self, *axes: Any) -> Tensor:
        """Permute the axes (reverse them when none are given), as ``ndarray.transpose``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        order = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        out = self._result(self.data.transpose(order), (self,), "transpose")

        def _backward() -> None:
            inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
            self._accumulate(out.grad.transpose(inverse))

        out._backward = _backward
        return out

    @property
    def T(self) -> Tensor:
        """The transpose (all axes reversed)."""
        return self.transpose()

    # ------------------------------------------------------------ backward
    def backward(self, grad: Any = None) -> None:
        """Fill ``.grad`` of every leaf tensor this one depends on (d self / d leaf).

        Called on a scalar it starts from 1; otherwise ``grad`` must have this tensor's shape.
        Intermediate tensors pass their gradient on and then drop it and their links, so the graph
        is freed as in PyTorch, and a second ``backward()`` through the same graph raises a
        RuntimeError (build the graph again, by a new forward pass). Everything is checked before
        any ``.grad`` changes.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() needs a scalar, got shape {self.shape}; pass grad=")
            grad = xp.ones_like(self.data)
        grad = as_array(numeric(grad.data if isinstance(grad, Tensor) else grad, "backward(grad)"), self.data.dtype)
        if tuple(grad.shape) != self.shape:
            raise ValueError(f"backward(grad): grad has shape {tuple(grad.shape)}, the tensor has shape {self.shape}")
        order = self._graph_order()
        if not self._parents:  # a leaf: its gradient adds up over calls, as any leaf's does
            self._accumulate(grad)
            for hook in self._grad_hooks or ():
                hook(self)
            return
        self.grad = grad
        waiting = consumers_of_hooked_leaves(order)
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward()
            if waiting:
                release_leaves(node, waiting)
            if node._parents:  # not a leaf: free the gradient and the graph behind it
                node.grad = None
                node._backward = None
                node._parents = ()
                node._freed = True

    def _graph_order(self) -> list[Tensor]:
        """The tensors this one depends on, each after all of its parents (a topological order).

        Raises RuntimeError when the path runs through a node whose graph an earlier ``backward()``
        already freed: its gradient could no longer reach the leaves behind it.
        """
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative depth-first search: deep graphs do not hit the recursion limit
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            if node._freed:
                raise RuntimeError(
                    f"backward() through the graph a second time: the result of '{node._op}' was already freed "
                    "by an earlier backward(); run the forward pass again to build a new graph")
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((parent, False) for parent in node._parents if parent.requires_grad)
        return order

