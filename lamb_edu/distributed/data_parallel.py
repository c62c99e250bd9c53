"""Data-parallel training: every rank computes the gradient of its slice of the global batch, the
gradients are summed over the ranks in buckets while backward runs, and every rank takes the same step.

A step on each rank, with the calls of ``DataParallel`` in brackets::

    x, y = [shard](global batch)                the same shuffle everywhere: rank r takes slice r
    loss = cross_entropy(model(x), y)
    loss.backward()                             each bucket of gradients leaves as soon as it is
                                                complete (buckets.py): communication overlaps backward
    loss = [all_reduce_gradients](loss)         sends the last bucket with the status, waits for
                                                the rest: grads ← (Σ_ranks grads) / size, mean loss
    optimizer.step()                            identical on every rank, so the weights stay equal

The mean of the ranks' mean gradients over equal slices is the mean gradient of the whole batch, so
N ranks compute the step one process would (up to the order of float32 additions). Rank 0's initial
parameters are broadcast at the start, so the ranks agree whatever their seeds.

One collective per bucket and nothing else: the step's status (does any rank have a non-finite loss
or gradient, and the sum of the losses) rides in the last bucket. A rank whose loss or gradient is
not finite says so there; every rank then raises ``RankFailure`` with that rank's message (two more
small collectives, on that path only) instead of stepping with a NaN in everyone's gradient.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from lamb_edu import backend
from lamb_edu.distributed.buckets import GradientBuckets
from lamb_edu.distributed.flat import FlatParameters
from lamb_edu.distributed.world import World, get_world
from lamb_edu.optim.fused import num_threads, set_num_threads

np = backend.np  # host NumPy for the status messages and timings

__all__ = ["DataParallel", "RankFailure", "check_batch_size", "resolve_bucket_mb", "DEFAULT_BUCKET_MB"]

MESSAGE_BYTES = 512
TIMED = ("compute_seconds", "exposed_seconds", "gradient_bytes")
# DDP's default is 25 MB, more than all of this project's models: one bucket, sent when backward ends,
# overlaps nothing. 0.25 MB cuts the MLP (1 MB of gradient) into a few buckets while each stays large
# against the latency of an all-reduce (6 µs on one host here; README, data-parallel training: buckets).
DEFAULT_BUCKET_MB = 0.25


def resolve_bucket_mb(bucket_mb: float | str | None, progress_thread: bool) -> float | None:
    """``bucket_mb`` checked; "auto" is ``DEFAULT_BUCKET_MB`` when a progress thread moves the buckets, else None.

    Without a core to spare for that thread, a rank's own core makes every copy of a transfer, so
    a bucket sent during backward hides nothing and each extra collective costs its latency: one
    bucket after backward was faster there (README, data-parallel training: buckets).
    """
    if bucket_mb == "auto":
        return DEFAULT_BUCKET_MB if progress_thread else None
    if bucket_mb is not None and (isinstance(bucket_mb, (str, bool)) or not bucket_mb > 0):
        raise ValueError(f"bucket_mb must be a positive number of megabytes, None for one bucket or 'auto', "
                         f"got {bucket_mb!r}")
    return bucket_mb


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
    """``DataParallel(model, world=None, bucket_mb="auto", overlap=True, backward_passes=1, progress_thread=None)``:
    batch slices, the gradient's reductions (buckets), the status, and timings.

    ``progress_thread``: poke MPI from a helper thread while buckets are in flight (``buckets``);
    None starts it only when the machine has at least two cores per rank on it.

    ``bucket_mb``: buckets of that many megabytes, each sent as soon as backward has finished it;
    None sends the whole gradient in one bucket after backward (the unbucketed path); "auto" is
    ``DEFAULT_BUCKET_MB`` with a progress thread and one bucket without (``resolve_bucket_mb``).
    ``overlap=False`` sends every bucket after backward. ``backward_passes`` is how many ``backward()``
    calls a step makes on each rank (gradient accumulation): a bucket leaves after the last one.
    ``timings`` holds one dict per step: ``step``, ``compute_seconds`` (from ``shard``/``begin_step``
    to ``all_reduce_gradients``, which includes starting the buckets), ``exposed_seconds`` (waiting
    for the communication backward did not hide) and ``gradient_bytes`` (the gradient's payload).
    """

    def __init__(self, model: Any, world: World | None = None, bucket_mb: float | str | None = "auto",
                 overlap: bool = True, backward_passes: int = 1, progress_thread: bool | None = None) -> None:
        self.world = world if world is not None else get_world()
        # a thread poking MPI needs a core of its own; without one it slows some rank's compute down
        self.progress_thread = ((os.cpu_count() or 1) >= 2 * self.world.local_size if progress_thread is None
                                else bool(progress_thread))
        bucket_mb = resolve_bucket_mb(bucket_mb, self.progress_thread)
        self.flat = FlatParameters(list(model.named_parameters()), shards=self.world.size)
        self.world.broadcast(self.flat.data)  # every rank starts from rank 0's weights
        if self.world.local_size > 1 and "LAMB_EDU_NUM_THREADS" not in os.environ:
            # the ranks on one machine share its cores: the fused optimizer steps get their share of them
            set_num_threads(max(1, min(num_threads(), (os.cpu_count() or 1) // self.world.local_size)))
        self.bucket_mb, self.overlap, self.backward_passes = bucket_mb, overlap, backward_passes
        self.deferred, self._average, self._averaged = False, True, [False]
        self.buckets = self._buckets(scatter=False)
        self.steps = 0
        self.timings: list[dict[str, Any]] = []
        self._message = np.zeros(MESSAGE_BYTES, dtype=np.uint8)
        self._step_started, self._clock_running = time.perf_counter(), False

    def _buckets(self, scatter: bool) -> GradientBuckets:
        size = None if self.bucket_mb is None else self.bucket_mb * 2**20
        buckets = GradientBuckets(self.flat, self.world, size, scatter=scatter, overlap=self.overlap,
                                  backward_passes=self.backward_passes, progress=self.progress_thread)
        if self.deferred:
            buckets.defer()
        return buckets

    def defer(self) -> None:
        """Let the optimizer step bucket by bucket (``BucketSteps``): ``all_reduce_gradients`` then waits only
        for the status (sent on its own, first), and ``wait_bucket``/``complete`` finish each bucket later."""
        self.deferred = True
        self.buckets.defer()

    def reduce_scatter(self) -> None:
        """From now on each rank receives only its shard's summed gradient (``shard_gradient``): ZeRO-1."""
        if not self.buckets.scatter:
            self.buckets.remove_hooks()
            self.buckets = self._buckets(scatter=True)

    @property
    def shard_gradient(self) -> Any:
        """After ``all_reduce_gradients`` in reduce-scatter mode: the summed gradient of this rank's shard."""
        return self.buckets.shard_grad

    def traffic(self) -> dict[str, int]:
        """Bytes each collective of a step carries (the payload, as MPI is given it): the gradient and the status."""
        gradient, status = int(self.flat.grad.nbytes), int(self.buckets.status.nbytes)
        if self.buckets.scatter:
            return {"gradient_reduce_scatter": gradient, "status_reduce_scatter": status * self.world.size}
        return {"gradient_allreduce": gradient, "status_allreduce": status}

    def begin_step(self) -> None:
        """Start the compute clock of this step (the first ``shard`` after an all-reduce does it too)."""
        self._step_started = time.perf_counter()
        self._clock_running = True

    def part_of(self, size: int) -> slice:
        """This rank's part of ``size`` items: ``[rank·size/ranks, (rank+1)·size/ranks)``, sizes within one."""
        rank, ranks = self.world.rank, self.world.size
        return slice(rank * size // ranks, (rank + 1) * size // ranks)

    def slice_of(self, size: int) -> slice:
        """This rank's part of a global batch of ``size`` examples (``part_of``); starts the step's compute clock.

        Parts differ by at most one example when the world size does not divide ``size`` (the
        training loop weights each part by its share of the examples, so that is still exact). The
        compute clock of the step starts at the first call after an all-reduce.
        """
        if not self._clock_running:
            self.begin_step()
        return self.part_of(size)

    def sum_over_ranks(self, values: list[float]) -> list[float]:
        """The sums over all ranks of a few numbers (in float64): one small all-reduce."""
        buffer = np.asarray(values, dtype=np.float64)
        self.world.allreduce_sum(buffer)
        return buffer.tolist()

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
        """Finish summing the gradients over the ranks (``p.grad`` become views of ``flat.grad``), and the losses.

        ``average=True`` (each rank's gradient is the mean over its equal slice) divides both sums by
        the world size: the mean gradient and mean loss of the global batch. ``average=False`` is for
        ranks whose gradients are already weighted by their share of the examples (``fit``'s
        ``Workers`` seam): the sums are the global batch's. In reduce-scatter mode only this rank's
        shard is summed (``shard_gradient``). Raises ``RankFailure`` on every rank when some but not
        all ranks have a non-finite loss or gradient, naming the first such rank; ``FloatingPointError``
        when all have (the run diverged, as it would on one process). The loss sum travels as float32.
        """
        compute_seconds = time.perf_counter() - self._step_started
        if self.buckets.in_flight():
            raise RuntimeError("the last step's buckets are still in flight: call optimizer.step() (BucketSteps) "
                               "after every all_reduce_gradients")
        self.steps += 1
        started = time.perf_counter()
        loss_problem = "" if math.isfinite(loss) else f"the loss is {loss}"
        problem, failed, total = self.buckets.finish(loss_problem, loss, wait=not self.deferred)
        if self.world.size == 1:
            total = loss  # nothing was summed: keep the float64 loss
        self._average, self._averaged = average, [False] * len(self.buckets.plan)
        if failed:
            self.complete()  # nothing is stepped: every bucket arrives, and the step is refused
            self._fail(problem, failed)
        if not self.deferred:
            self._average_all()
        backend.synchronize()
        self.timings.append({"step": self.steps, "compute_seconds": compute_seconds,
                             "exposed_seconds": time.perf_counter() - started, "gradient_bytes": self.flat.grad.nbytes})
        self._step_started, self._clock_running = time.perf_counter(), False
        return total / self.world.size if average else total

    def _average_all(self) -> None:
        """Divide the summed gradient (this rank's shard of it, in reduce-scatter mode) by the world size."""
        if self._average and self.world.size > 1:
            reduced = self.buckets.shard_grad if self.buckets.scatter else self.flat.grad
            reduced *= 1.0 / self.world.size

    def wait_bucket(self, number: int) -> None:
        """``defer``: wait for bucket ``number``'s sum and average it (its time is added to ``bucket_wait_seconds``)."""
        started = time.perf_counter()
        self.buckets.wait_bucket(number)
        if self._average and self.world.size > 1 and not self._averaged[number]:
            start, stop = self.buckets.ranges[number]
            if self.buckets.scatter:  # the bucket's overlap with this rank's shard
                first = self.flat.shard_range(self.world.rank)[0]
                start, stop = max(start - first, 0), max(min(stop - first, self.flat.shard_size), 0)
            (self.buckets.shard_grad if self.buckets.scatter else self.flat.grad)[start:stop] *= 1.0 / self.world.size
        self._averaged[number] = True
        if self.timings and self.timings[-1]["step"] == self.steps:  # (a refused step has no timing yet)
            timing = self.timings[-1]
            timing["bucket_wait_seconds"] = timing.get("bucket_wait_seconds", 0.0) + time.perf_counter() - started

    def complete(self) -> None:
        """``defer``: wait for (and average) every bucket still in flight; the step's reduction is over."""
        if self.buckets.in_flight():
            for number in range(len(self.buckets.plan)):
                self.wait_bucket(number)
            self.buckets.complete()

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

    def _fail(self, problem: str, failed: float) -> None:
        """Some rank had a problem: every rank learns which came first and raises with its message."""
        size = self.world.size
        if round(failed) >= size:
            raise FloatingPointError(f"every rank's loss or gradient is not finite at step {self.steps} "
                                     "(the run diverged)")
        flags = np.zeros(size, dtype=np.float64)
        flags[self.world.rank] = 1.0 if problem else 0.0
        self.world.allreduce_sum(flags)
        first = int(np.flatnonzero(flags)[0])  # it tells everyone what went wrong
        if self.world.rank == first:
            encoded = f"{problem} at step {self.steps}".encode()[: MESSAGE_BYTES - 1]
            self._message[:] = 0
            self._message[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        self.world.broadcast(self._message, root=first)
        message = bytes(self._message).rstrip(b"\0").decode(errors="replace")
        raise RankFailure(f"rank {first} of {size} failed: {message}")
