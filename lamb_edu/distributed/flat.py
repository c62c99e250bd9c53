"""All parameters (and all gradients) of a model in one contiguous float32 buffer each.

A collective call has a fixed cost (latency) on top of the bytes it moves, so data-parallel training
sends one big message per step rather than one per layer, as PyTorch's DDP does with its buckets.
``FlatParameters`` lays the parameters end to end::

    data = [ layers.0.weight | layers.0.bias | layers.2.weight | ... | padding ]

and rebinds every ``p.data`` to its view in ``data``, so the model and the optimizers keep working
on the same memory. After ``backward()`` the gradients are fresh arrays; ``gather_gradients`` copies
each into its slice of ``grad`` and rebinds ``p.grad`` to that view. The padding (zeros) makes the
length a multiple of the world size, so the buffer splits into equal shards for ZeRO.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["FlatParameters"]


class FlatParameters:
    """``FlatParameters(named_parameters, shards=1)``: ``data`` and ``grad`` buffers, ``offsets``, ``sizes``."""

    def __init__(self, named_parameters: Sequence[tuple[str, Tensor]], shards: int = 1) -> None:
        named = list(named_parameters)
        if not named:
            raise ValueError("FlatParameters needs at least one parameter")
        self.names = [name for name, _ in named]
        self.parameters = [p for _, p in named]
        dtypes = {p.dtype for p in self.parameters}
        if len(dtypes) != 1:
            raise ValueError(f"all parameters must share one dtype to live in one buffer, "
                             f"got {sorted(map(str, dtypes))}")
        self.sizes = [p.size for p in self.parameters]
        self.offsets = [sum(self.sizes[:index]) for index in range(len(self.sizes))]
        self.numel = sum(self.sizes)
        self.shards = int(shards)
        self.shard_size = math.ceil(self.numel / self.shards)
        padded = self.shard_size * self.shards
        self.data = xp.zeros(padded, dtype=self.parameters[0].dtype)
        self.grad = xp.zeros_like(self.data)
        for index, p in enumerate(self.parameters):
            view = self.view(self.data, index)
            view[...] = p.data
            p.data = view  # the model now reads and writes the flat buffer

    def view(self, buffer: Any, index: int) -> Any:
        """Parameter ``index``'s slice of a flat ``buffer``, in the parameter's shape (a view, no copy)."""
        start = self.offsets[index]
        return buffer[start : start + self.sizes[index]].reshape(self.parameters[index].shape)

    def gather_gradients(self) -> None:
        """Copy every ``p.grad`` into its slice of ``grad`` and make ``p.grad`` that view.

        A parameter without a gradient gets zeros there (so every rank sends the same layout).
        """
        for index, p in enumerate(self.parameters):
            view = self.view(self.grad, index)
            if p.grad is None:
                view[...] = 0
            elif p.grad is not view:
                view[...] = p.grad
            p.grad = view

    def shard_range(self, rank: int) -> tuple[int, int]:
        """The half-open range ``[start, stop)`` of the flat buffer that rank ``rank`` owns (padding included)."""
        return rank * self.shard_size, (rank + 1) * self.shard_size

    def pieces(self, rank: int) -> list[tuple[int, int, int]]:
        """``(parameter index, start, stop)`` for each parameter that overlaps rank ``rank``'s shard.

        ``start`` and ``stop`` are positions in the flat buffer; a parameter may be cut at either end,
        which is why per-layer norms need a collective when the optimizer state is sharded.
        """
        first, last = self.shard_range(rank)
        pieces = []
        for index, (offset, size) in enumerate(zip(self.offsets, self.sizes)):
            start, stop = max(offset, first), min(offset + size, last)
            if start < stop:
                pieces.append((index, start, stop))
        return pieces

    @property
    def nbytes(self) -> int:
        """Bytes of one flat buffer (padding included): what one all-reduce of the gradients sends."""
        return int(self.data.nbytes)

    def host_copy(self) -> Any:
        """The parameters (without padding) as one host NumPy array."""
        return backend.to_numpy(self.data[: self.numel]).copy()
