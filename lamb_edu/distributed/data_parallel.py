"""Data-parallel training: every rank computes the gradient of its slice of the global batch, one
all-reduce averages the gradients, and every rank takes the same optimizer step.

A step on each rank, with the calls of ``DataParallel`` in brackets::

    x, y = [shard](global batch)                the same shuffle everywhere: rank r takes slice r
    loss = cross_entropy(model(x), y); loss.backward()
    loss = [all_reduce_gradients](loss)         grads ← (Σ_ranks grads) / size, and the mean loss
    optimizer.step()                            identical on every rank, so the weights stay equal

The mean of the ranks' mean gradients over equal slices is the mean gradient of the whole batch, so
N ranks compute the step one process would (up to the order of float32 additions). Rank 0's initial
parameters are broadcast at the start, so the ranks agree whatever their seeds.

Before the big all-reduce the ranks agree on a per-step status with a tiny one (one number per
rank): a rank whose loss or gradient is not finite says so, and then every rank raises
``RankFailure`` with that rank's message instead of averaging a NaN into everyone's weights or
leaving a rank waiting in a collective.
"""

from __future__ import annotations

import math
import time
from typing import Any

from lamb_edu import backend
from lamb_edu.distributed.flat import FlatParameters
from lamb_edu.distributed.world import World, get_world
from lamb_edu.optim.optimizer import all_finite

np = backend.np  # host NumPy for the status messages and timings

__all__ = ["DataParallel", "RankFailure", "check_batch_size"]

MESSAGE_BYTES = 512
TIMED = ("compute_seconds", "agree_seconds", "allreduce_seconds", "allreduce_bytes")


class RankFailure(RuntimeError):
    """One rank failed during a step; raised on every rank with the failing rank's message."""


def check_batch_size(batch_size: int, world_size: int, train_size: int | None = None) -> None:
    """ValueError unless every global batch (the last, shorter one included) splits evenly over the ranks."""
    last = train_size % batch_size if train_size else 0
    if batch_size % world_size or last % world_size:
        bad = batch_size if batch_size % world_size else last
        raise ValueError(f"a global batch of {bad} examples cannot be split evenly over {world_size} ranks; "
                         f"choose a batch size (and train size) divisible by {world_size}")


class DataParallel:
    """``DataParallel(model, world=None)``: flat gradients, batch slices, the averaged gradient and timings.

    ``timings`` holds one dict per step: ``step``, ``compute_seconds`` (from ``shard``/``begin_step``
    to the gradient being ready), ``agree_seconds`` (the status handshake), ``allreduce_seconds`` and
    ``allreduce_bytes`` (the gradient all-reduce).
    """

    def __init__(self, model: Any, world: World | None = None) -> None:
        self.world = world if world is not None else get_world()
        self.flat = FlatParameters(list(model.named_parameters()), shards=self.world.size)
        self.world.broadcast(self.flat.data)  # every rank starts from rank 0's weights
        self.steps = 0
        self.timings: list[dict[str, Any]] = []
        self._status = np.zeros(self.world.size + 1, dtype=np.float64)
        self._message = np.zeros(MESSAGE_BYTES, dtype=np.uint8)
        self._step_started, self._clock_running = time.perf_counter(), False

    def begin_step(self) -> None:
        """Start the compute clock of this step (the first ``shard`` after an all-reduce does it too)."""
        self._step_started = time.perf_counter()
        self._clock_running = True

    def slice_of(self, size: int) -> slice:
        """This rank's part of a global batch of ``size`` examples: ``[rank·size/ranks, (rank+1)·size/ranks)``.

        Parts differ by at most one example when the world size does not divide ``size`` (the
        training loop weights each part by its share of the examples, so that is still exact). The
        compute clock of the step starts at the first call after an all-reduce.
        """
        if not self._clock_running:
            self.begin_step()
        rank, ranks = self.world.rank, self.world.size
        return slice(rank * size // ranks, (rank + 1) * size // ranks)

    def shard(self, x: Any, y: Any) -> tuple[Any, Any]:
        """This rank's equal slice of a global batch ``(x, y)`` (``slice_of``); the world size must divide it.

        With gradient accumulation call it for every micro-batch: the compute clock starts at the first.
        """
        count, size = len(x), self.world.size
        if count % size:
            raise ValueError(f"a global batch of {count} examples cannot be split evenly over {size} ranks")
        part = self.slice_of(count)
        return x[part], y[part]

    def all_reduce_gradients(self, loss: float, average: bool = True) -> float:
        """Sum the gradients over the ranks, in place (``p.grad`` become views of ``flat.grad``), and the losses.

        ``average=True`` (each rank's gradient is the mean over its equal slice) divides both sums by
        the world size: the mean gradient and mean loss of the global batch. ``average=False`` is for
        ranks whose gradients are already weighted by their share of the examples (``fit``'s
        ``Workers`` seam): the sums are the global batch's. Raises ``RankFailure`` on every rank when
        some but not all ranks have a non-finite loss or gradient, naming the first such rank;
        ``FloatingPointError`` when all have (the run diverged, as it would on one process), before
        any gradient is exchanged.
        """
        compute_seconds = time.perf_counter() - self._step_started
        self.steps += 1
        self.flat.gather_gradients()
        started = time.perf_counter()
        total_loss = self._agree(loss, self._local_problem(loss))
        agree_seconds = time.perf_counter() - started
        started = time.perf_counter()
        self.world.allreduce_sum(self.flat.grad)
        if average and self.world.size > 1:
            self.flat.grad *= 1.0 / self.world.size
        backend.synchronize()
        self.timings.append({"step": self.steps, "compute_seconds": compute_seconds, "agree_seconds": agree_seconds,
                             "allreduce_seconds": time.perf_counter() - started,
                             "allreduce_bytes": self.flat.nbytes})
        self._step_started, self._clock_running = time.perf_counter(), False
        return total_loss / self.world.size if average else total_loss

    def timing_summary(self) -> dict[str, Any]:
        """Mean and total over the timed steps of each entry of ``timings`` (seconds and bytes)."""
        summary: dict[str, Any] = {"steps": len(self.timings)}
        for key in TIMED:
            values = [timing[key] for timing in self.timings]
            summary[key] = {"mean": sum(values) / len(values) if values else None, "total": sum(values)}
        return summary

    def timing_arrays(self) -> dict[str, Any]:
        """``timings`` as host arrays, one per entry (``step`` counts this object's all-reduces from 1)."""
        return {key: np.asarray([timing[key] for timing in self.timings]) for key in ("step", *TIMED)}

    def _local_problem(self, loss: float) -> str:
        """'' when this rank's loss and gradients are finite, else what is wrong."""
        if not math.isfinite(loss):
            return f"the loss is {loss} at step {self.steps}"
        if all_finite(self.flat.grad):
            return ""
        for name, p in zip(self.flat.names, self.flat.parameters):
            if not all_finite(p.grad):
                return f"the gradient of {name} contains NaN or inf at step {self.steps}"
        return f"the gradient contains NaN or inf at step {self.steps}"

    def _agree(self, loss: float, problem: str) -> float:
        """The status handshake: a sum over ranks of [failed?] per rank and of the losses; returns the loss sum."""
        size = self.world.size
        self._status[:] = 0.0
        self._status[self.world.rank] = 1.0 if problem else 0.0
        self._status[size] = 0.0 if problem else loss
        self.world.allreduce_sum(self._status)
        failed = [rank for rank in range(size) if self._status[rank] > 0]
        if not failed:
            return float(self._status[size])
        if len(failed) == size:
            raise FloatingPointError(f"every rank's loss or gradient is not finite at step {self.steps} (the run diverged)")
        first = failed[0]  # it tells everyone what went wrong
        if self.world.rank == first:
            encoded = problem.encode()[: MESSAGE_BYTES - 1]
            self._message[:] = 0
            self._message[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        self.world.broadcast(self._message, root=first)
        message = bytes(self._message).rstrip(b"\0").decode(errors="replace")
        raise RankFailure(f"rank {first} of {size} failed: {message}")
