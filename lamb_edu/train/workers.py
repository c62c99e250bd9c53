"""Who computes a global batch: this process alone (``SingleProcess``), or several that share it.

``fit`` and ``train_step`` talk to the workers through three things, so data-parallel training is a
class with the same members and nothing in the loop changes:

- ``shard(size)``: the slice of a global batch of ``size`` examples this process computes;
- ``all_reduce(parameters, loss_share)``: called once per step when every ``p.grad`` holds this
  process's share of the gradient (weighted by its share of the examples, so shares add up to the
  mean over the global batch); it must leave the sum over processes in every ``p.grad`` and return
  the summed loss;
- ``is_main``: only the main process writes files, prints and shows progress;
- ``evaluate(model, x, y)``: the test loss and accuracy; data-parallel ranks each score their share
  of the test set and add up the counts.

``DataParallelWorkers`` is that class for the ranks of a ``lamb_edu.distributed.DataParallel``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from lamb_edu.train.metrics import evaluate

__all__ = ["Workers", "SingleProcess", "DataParallelWorkers"]


class Workers(Protocol):
    """What ``fit`` needs from the processes that share each global batch."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool: ...

    def shard(self, size: int) -> slice: ...

    def all_reduce(self, parameters: list[Any], loss_share: float) -> float: ...

    def evaluate(self, model: Any, x: Any, y: Any) -> tuple[float, float]: ...


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

    def evaluate(self, model: Any, x: Any, y: Any) -> tuple[float, float]:
        """``metrics.evaluate`` on all of ``(x, y)``."""
        return evaluate(model, x, y)


class DataParallelWorkers:
    """``DataParallelWorkers(parallel)``: the ranks of a ``DataParallel`` share every global batch.

    Rank r computes slice r of each batch; the gradients, already weighted by each slice's share of
    the examples, are summed (not averaged) by one all-reduce of the flat gradient buffer, so every
    rank holds the global batch's mean gradient and takes the same step. A loss that is not finite
    on every rank is divergence, as on one process; on some ranks only, ``RankFailure`` on all.
    """

    def __init__(self, parallel: Any) -> None:
        self.parallel = parallel
        self.rank, self.world_size = parallel.world.rank, parallel.world.size

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0

    def shard(self, size: int) -> slice:
        """This rank's slice of a global batch of ``size`` examples (it also starts the step's compute clock)."""
        return self.parallel.slice_of(size)

    def all_reduce(self, parameters: list[Any], loss_share: float) -> float:
        """Sum every rank's gradient shares into every ``p.grad``; return the global batch's loss (NaN: diverged)."""
        try:
            return self.parallel.all_reduce_gradients(loss_share, average=False)
        except FloatingPointError:  # every rank's loss or gradient is not finite: the run diverged
            return math.nan

    def evaluate(self, model: Any, x: Any, y: Any) -> tuple[float, float]:
        """Each rank scores its share of ``(x, y)``; one all-reduce adds the summed losses and the correct counts."""
        part = self.parallel.part_of(len(y))
        count = part.stop - part.start
        loss, accuracy = evaluate(model, x[part], y[part]) if count else (0.0, 0.0)
        loss_sum, correct = self.parallel.sum_over_ranks([loss * count, accuracy * count])
        return loss_sum / len(y), correct / len(y)
