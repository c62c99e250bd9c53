"""One optimizer step on one global batch, with gradient accumulation and a seam for data parallelism.

The gradient of a global batch of N examples is the mean of its examples' gradients. Cut into
micro-batches of n_i examples (to fit in memory, or over workers), it is Σ_i (n_i / N)·g_i, where g_i
is the mean gradient of micro-batch i: each micro-batch's backward pass is weighted by its share of
the examples, and autograd adds the results into ``p.grad``. ``train_step`` then hands the gradient
to ``workers.all_reduce`` (the one place where "the gradient of this global batch is ready, before
the step"; a single process does nothing there, an MPI worker sums it over ranks) and steps.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn import Module, cross_entropy
from lamb_edu.train.workers import SingleProcess, Workers

np = backend.np

__all__ = ["train_step", "accumulate_gradients", "micro_batches", "classification_objective"]


def micro_batches(size: int, micro_batch_size: int) -> list[slice]:
    """Consecutive slices of ``range(size)`` of ``micro_batch_size`` examples; the last may be smaller."""
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be at least 1, got {micro_batch_size}")
    return [slice(begin, min(begin + micro_batch_size, size)) for begin in range(0, size, micro_batch_size)]


Objective = Callable[[Module, Any, Any], Tensor]


def classification_objective(model: Module, x: Any, y: Any) -> Tensor:
    """The mean cross-entropy of ``model`` on inputs ``x`` and class labels ``y``: MNIST's objective."""
    return cross_entropy(model(Tensor(x)), y)


def accumulate_gradients(model: Module, x: Any, y: Any, micro_batch_size: int, global_size: int,
                         objective: Objective = classification_objective) -> float:
    """Set each ``p.grad`` to this part's share of the gradient of the mean loss over ``global_size`` examples.

    ``(x, y)`` is all of the global batch, or this worker's shard of it; it is cut into micro-batches
    of ``micro_batch_size``, and micro-batch i's mean loss is back-propagated with weight n_i/N. Returns
    Σ_i (n_i/N)·loss_i, this part's share of the mean loss (NaN or inf when a loss was not finite).
    ``objective(model, x, y)`` is the task's mean loss (cross-entropy by default); the weights
    n_i/N are exact when every example counts alike (a digit, a window with its fixed number of masks).
    """
    model.zero_grad()
    loss_share = 0.0
    for part in micro_batches(len(y), micro_batch_size):
        loss = objective(model, x[part], y[part])
        weight = (part.stop - part.start) / global_size
        loss_value = loss.item()
        loss_share += loss_value * weight
        if not math.isfinite(loss_value):
            continue  # no gradient worth computing; the step will be refused
        loss.backward(None if weight == 1.0 else weight)
    return loss_share


def train_step(model: Module, optimizer: Any, x: Any, y: Any, *, micro_batch_size: int | None = None,
               workers: Workers | None = None, objective: Objective = classification_objective) -> float | None:
    """One step on the global batch ``(x, y)``: gradients (accumulated over micro-batches), then ``optimizer.step()``.

    ``micro_batch_size`` (default: the whole batch) bounds the examples in one forward pass.
    ``workers`` (default: this process alone) gives this process its shard and combines the
    gradients before the step. ``objective`` is the task's loss (cross-entropy by default).
    Returns the mean loss over the global batch, or None, without
    stepping, when that loss is not finite or the optimizer refuses a NaN/inf gradient (it raises
    FloatingPointError before changing anything). Overflow warnings of a diverging run are
    silenced: the return value reports it.
    """
    workers = workers if workers is not None else SingleProcess()
    shard = workers.shard(len(y))
    x_part, y_part = x[shard], y[shard]
    with np.errstate(over="ignore", invalid="ignore"):
        loss_share = accumulate_gradients(model, x_part, y_part, micro_batch_size or len(y), len(y), objective)
        loss = workers.all_reduce(model.parameters(), loss_share)  # the global batch's gradient is ready here
        if not math.isfinite(loss):
            return None
        try:
            optimizer.step()
        except FloatingPointError:
            return None
    return loss
