"""Who computes a global batch: this process alone (``SingleProcess``), or several that share it.

``fit`` and ``train_step`` talk to the workers through three things, so data-parallel training is a
class with the same members and nothing in the loop changes:

- ``shard(size)``: the slice of a global batch of ``size`` examples this process computes;
- ``all_reduce(parameters, loss_share)``: called once per step when every ``p.grad`` holds this
  process's share of the gradient (weighted by its share of the examples, so shares add up to the
  mean over the global batch); it must leave the sum over processes in every ``p.grad`` and return
  the summed loss;
- ``is_main``: only the main process writes files, prints and shows progress.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Workers", "SingleProcess"]


class Workers(Protocol):
    """What ``fit`` needs from the processes that share each global batch."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool: ...

    def shard(self, size: int) -> slice: ...

    def all_reduce(self, parameters: list[Any], loss_share: float) -> float: ...


class SingleProcess:
    """One process computes every global batch: its shard is all of it and there is nothing to reduce."""

    rank = 0
    world_size = 1
    is_main = True

    def shard(self, size: int) -> slice:
        """All ``size`` examples."""
        return slice(0, size)

    def all_reduce(self, parameters: list[Any], loss_share: float) -> float:
        """Nothing to combine: the gradients and ``loss_share`` are already the whole batch's."""
        return loss_share
