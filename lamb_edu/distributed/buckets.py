"""Gradient buckets sent during backward, as PyTorch DDP's reducer and Horovod's tensor fusion do.

The flat gradient buffer (``FlatParameters.grad``) is cut into buckets of about ``bucket_bytes``,
filled in reverse parameter order, which is the order backward finishes the gradients in (the last
layer first). A hook on every parameter (``Tensor.register_post_accumulate_grad_hook``) copies its
gradient into the buffer as soon as it is final; when a bucket's last gradient arrives its
non-blocking reduction starts (``Iallreduce``, or ``Ireduce_scatter`` for ZeRO-1) while backward
goes on with the earlier layers. ``finish`` then waits only for what is still in flight.

The step's status travels in the last bucket (the one holding the first layer, which backward
finishes last, so it is held back until ``finish`` knows this rank's loss): two numbers, the count
of ranks with a problem and the sum of the losses, in front of the gradient. One collective per
bucket, and no separate handshake. For a reduce-scatter each rank's part of that bucket carries a
copy of the two numbers, so every rank receives the sums.

``defer()`` prepares the optimizer's step bucket by bucket (``BucketSteps``): ``finish(wait=False)``
then sends the status on its own, just before the last bucket, waits for it alone and returns; the
caller waits for each bucket with ``wait_bucket`` and steps it while the later ones are in flight,
then calls ``complete``. The status then has a third number, the count of ranks whose gradient is
so large that its sum over the ranks could overflow (``SPLIT_MARGIN``): only when it is 0 is every
bucket's sum sure to pass the optimizer's checks, so that stepping a bucket before the next has
arrived can never leave a step half done.

MPI moves a non-blocking collective on only inside MPI calls, and a long matrix product inside
backward makes none. Each hook call polls the buckets in flight. With ``progress=True`` a helper
thread also pokes MPI's progress engine every ``PROGRESS_SECONDS`` while buckets are in flight
(NumPy releases Python's lock during its products, so the two run side by side), so the buckets
travel during a long product rather than at the next hook. That thread needs a core of its own: on
a machine with no core to spare (2 ranks on 2 cores) it takes processor time from some rank's
compute, and a step is slower with it (README: data-parallel training), so ``DataParallel`` starts it
only when there are at least two cores per rank on the machine. Poking more often makes the
transfers finish sooner but takes more processor time.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from lamb_edu.backend import xp
from lamb_edu.distributed.flat import FlatParameters
from lamb_edu.distributed.world import Pending, World
from lamb_edu.optim.checks import all_finite

__all__ = ["GradientBuckets", "plan_buckets", "STATUS_SIZE"]

STATUS_SIZE = 2  # [ranks with a problem, Σ loss]; a third number with defer(): ranks whose gradient is too large
SPLIT_MARGIN = 4.0  # Σ g² · size² · this < the dtype's largest value keeps every sum over ranks and its square finite
PROGRESS_SECONDS = 1e-3  # between two pokes of MPI's progress engine while buckets are in flight


class Progress:
    """A daemon thread that calls ``world.poke()`` every ``PROGRESS_SECONDS`` while ``busy`` is set."""

    def __init__(self, world: World) -> None:
        self.world, self.busy = world, threading.Event()
        threading.Thread(target=self._run, name="lamb-edu-mpi-progress", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.busy.wait()
            self.world.poke()
            time.sleep(PROGRESS_SECONDS)


_progress: dict[int, Progress] = {}


def progress_of(world: World) -> Progress:
    """The one progress thread of ``world`` (started at the first call)."""
    if id(world) not in _progress:
        _progress[id(world)] = Progress(world)
    return _progress[id(world)]


def plan_buckets(sizes: list[int], itemsize: int, bucket_bytes: float | None) -> list[list[int]]:
    """Parameter indices per bucket, last parameter first; a bucket closes once it holds ``bucket_bytes``.

    A parameter is never split; one larger than ``bucket_bytes`` gets a bucket of its own.
    ``bucket_bytes=None`` puts everything in one bucket (no overlap: it is sent when backward ends).
    """
    if bucket_bytes is not None and bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive (or None for one bucket), got {bucket_bytes}")
    buckets: list[list[int]] = [[]]
    filled = 0
    for index in reversed(range(len(sizes))):
        if bucket_bytes is not None and buckets[-1] and filled + sizes[index] * itemsize > bucket_bytes:
            buckets.append([])
            filled = 0
        buckets[-1].append(index)
        filled += sizes[index] * itemsize
    return buckets


class GradientBuckets:
    """``GradientBuckets(flat, world, bucket_bytes, scatter=False, overlap=True, backward_passes=1, progress=True)``:
    the gradient's reductions.

    ``scatter=False``: every rank ends with the summed gradient in ``flat.grad``. ``scatter=True``
    (ZeRO-1): rank r ends with the sum over its shard ``flat.shard_range(r)`` in ``shard_grad``;
    ``flat.grad`` keeps this rank's own gradient. ``overlap=False`` sends every bucket in ``finish``.
    ``last_events`` records ``(time.perf_counter(), what, bucket)`` of the last step: "start" (its
    reduction begins), "done" (``finish`` or ``wait_bucket`` saw it complete); the status sent on its
    own (``defer``) is bucket -1; ``BucketSteps`` adds "step" (its optimizer step begins).
    """

    def __init__(self, flat: FlatParameters, world: World, bucket_bytes: float | None, scatter: bool = False,
                 overlap: bool = True, backward_passes: int = 1, progress: bool = True) -> None:
        self.flat, self.world, self.scatter, self.overlap = flat, world, scatter, overlap
        self.backward_passes = int(backward_passes)
        self.plan = plan_buckets(flat.sizes, flat.data.itemsize, bucket_bytes)
        # the status sits in front of the gradient, so the last bucket [status | first layers] is contiguous
        self.storage = xp.zeros(STATUS_SIZE + 1 + flat.grad.size, dtype=flat.grad.dtype)
        flat.grad = self.storage[STATUS_SIZE + 1 :]
        for index, p in enumerate(flat.parameters):  # backward writes each gradient into its slot (no copy)
            p.grad_buffer = flat.view(flat.grad, index)
        self.status_first = False  # defer(): the status leaves on its own, with a third number
        self.split_safe = True  # after finish with defer(): no rank's gradient is too large to step bucket by bucket
        self.status = self.storage[1 : 1 + STATUS_SIZE]
        self.ranges = [self._range(indices, number == len(self.plan) - 1) for number, indices in enumerate(self.plan)]
        self.bucket_of = {index: number for number, indices in enumerate(self.plan) for index in indices}
        # ZeRO-1: the status arrives in front of this rank's shard, so the gradient is received in place
        self.shard_storage = xp.zeros(STATUS_SIZE + 1 + flat.shard_size, dtype=flat.grad.dtype) if scatter else None
        self.shard_grad = self.shard_storage[STATUS_SIZE + 1 :] if scatter else None
        self._status_sends: dict[tuple[int, int], Any] = {}  # the status bucket's send buffers, made once
        self._removers = [p.register_post_accumulate_grad_hook(self._hook(index))
                          for index, p in enumerate(flat.parameters)]
        self.events: list[tuple[float, str, int]] = []
        self.last_events: list[tuple[float, str, int]] = []
        self.progress = progress_of(world) if world.size > 1 and overlap and progress else None
        self._begin()

    def defer(self) -> None:
        """From the next step on, ``finish(wait=False)`` sends the status first and on its own (three numbers)."""
        self.status_first = True
        self.status = self.storage[: STATUS_SIZE + 1]

    def _range(self, indices: list[int], last: bool) -> tuple[int, int]:
        """The bucket's flat range; the first bucket also covers the padding, the last starts at 0."""
        start = 0 if last else self.flat.offsets[min(indices)]
        stop = self.flat.offsets[max(indices)] + self.flat.sizes[max(indices)]
        return start, self.flat.grad.size if max(indices) == len(self.flat.sizes) - 1 else stop

    def _begin(self) -> None:
        """A new step: no gradient arrived, nothing in flight."""
        self.arrivals = [0] * len(self.flat.parameters)
        self.missing = [len(indices) for indices in self.plan]
        self.pending: list[Pending | None] = [None] * len(self.plan)
        self.status_pending: Pending | None = None
        self.events = []
        self.problem = ""  # what is wrong with this rank's gradient, found before a bucket leaves
        self.large = False  # this rank's gradient is too large to step bucket by bucket (SPLIT_MARGIN)

    def _check(self, number: int) -> None:
        """Before bucket ``number`` leaves: note the first of its gradients that holds NaN or inf (or is too large)."""
        start, stop = self.ranges[number]
        if self.problem:
            return
        gradient = self.flat.grad[start:stop]
        squares = float(xp.vdot(gradient, gradient))
        if math.isfinite(squares):
            limit = float(xp.finfo(gradient.dtype).max) / (SPLIT_MARGIN * self.world.size**2)
            self.large = self.large or squares >= limit
            return
        self.large = True
        for index in sorted(self.plan[number]):
            if not all_finite(self.flat.view(self.flat.grad, index)):
                self.problem = f"the gradient of {self.flat.names[index]} contains NaN or inf"
                return

    def remove_hooks(self) -> None:
        """Take the hooks off the parameters (this object stops receiving gradients)."""
        for remove in self._removers:
            remove()
        for p in self.flat.parameters:
            p.grad_buffer = None

    def _hook(self, index: int) -> Callable[[Any], None]:
        def arrived(p: Any) -> None:
            self.arrivals[index] += 1
            if self.arrivals[index] < self.backward_passes:
                return  # gradient accumulation: more micro-batches will add to it
            number = self.bucket_of[index]
            if self.status_pending is not None:
                raise RuntimeError("the last step's buckets are still in flight: call optimizer.step() (BucketSteps) "
                                   "after every all_reduce_gradients")
            if self.pending[number] is not None:
                raise RuntimeError(f"the gradient of {self.flat.names[index]} changed after its bucket was sent: "
                                   f"more than backward_passes={self.backward_passes} backward() calls in one step")
            self._store(index)
            self.missing[number] -= 1
            if self.missing[number] == 0 and self.overlap and number != len(self.plan) - 1:
                self._check(number)
                self._start(number)
            for pending in self.pending:  # let MPI move the buckets in flight on
                if pending is not None:
                    pending.test()
        return arrived

    def _store(self, index: int) -> None:
        """Parameter ``index``'s gradient into its slice of ``flat.grad`` (zeros when it has none).

        Nothing to copy when backward wrote it there already (``grad_buffer``).
        """
        p = self.flat.parameters[index]
        view = p.grad_buffer
        if p.grad is None:
            view[...] = 0
        elif p.grad is not view:
            view[...] = p.grad
        p.grad = view

    def _start(self, number: int) -> None:
        self.events.append((time.perf_counter(), "start", number))
        if self.progress is not None:
            self.progress.busy.set()
        start, stop = self.ranges[number]
        with_status = number == len(self.plan) - 1 and not self.status_first
        at = STATUS_SIZE + 1  # where flat.grad begins in storage
        if not self.scatter:
            self.pending[number] = self.world.start_allreduce_sum(
                self.storage[at + start - (STATUS_SIZE if with_status else 0) : at + stop])
        elif not with_status:
            counts, receive = self._scatter_parts(start, stop)
            self.pending[number] = self.world.start_reduce_scatter_sum(self.storage[at + start : at + stop], receive,
                                                                       counts)
        else:
            self.pending[number] = self._start_status_scatter(stop)

    def _start_status(self) -> None:
        """``defer``: the status alone, summed on every rank (for a reduce-scatter, a copy in each rank's part)."""
        self.events.append((time.perf_counter(), "start", -1))
        if self.progress is not None:
            self.progress.busy.set()
        self.status_pending = (self._start_status_scatter(0) if self.scatter
                               else self.world.start_allreduce_sum(self.status))

    def _scatter_parts(self, start: int, stop: int) -> tuple[list[int], Any]:
        """Each rank's count of flat ``[start, stop)`` (its overlap with the shard) and this rank's receive view."""
        size = self.flat.shard_size
        counts = [max(0, min(stop, (r + 1) * size) - max(start, r * size)) for r in range(self.world.size)]
        first = max(start, self.world.rank * size) - self.world.rank * size
        return counts, self.shard_grad[first : first + counts[self.world.rank]]

    def _start_status_scatter(self, stop: int) -> Pending:
        """The status and flat ``[0, stop)`` reduce-scattered: each rank's part gets a copy of the status in front.

        The send buffer is made once; this rank's part (status, then the start of its shard) is received
        in front of ``shard_grad``, in place.
        """
        counts, _ = self._scatter_parts(0, stop)
        status = self.status.size
        send = self._status_sends.get((status, stop))
        if send is None:
            send = self._status_sends[status, stop] = xp.zeros(status * len(counts) + stop, dtype=self.flat.grad.dtype)
        at = 0
        for rank, count in enumerate(counts):
            part = send[rank * status + at : (rank + 1) * status + at + count]
            part[:status], part[status:] = self.status, self.flat.grad[at : at + count]
            at += count
        mine = self.shard_storage[STATUS_SIZE + 1 - status : STATUS_SIZE + 1 + counts[self.world.rank]]
        pending = self.world.start_reduce_scatter_sum(send, mine, [status + count for count in counts])

        def unpack() -> None:
            pending.wait()
            self.status[...] = mine[:status]
        return Pending(done=unpack)

    def finish(self, loss_problem: str, loss: float, wait: bool = True) -> tuple[str, float, float]:
        """Send what is left, with the status; wait for everything (``defer`` and ``wait=False``: the status only).

        Every bucket not sent yet (all of them without overlap) has its gradients stored and checked
        first. ``loss_problem`` is '' or what is wrong with this rank's loss. Returns this rank's
        problem ('' when none), the number of ranks with one and the sum of the losses. After
        ``wait=False`` call ``wait_bucket`` for each bucket (in order), then ``complete``.
        """
        for number, indices in enumerate(self.plan):
            if self.pending[number] is None:
                for index in indices:
                    self._store(index)
                self._check(number)
        problem = loss_problem or self.problem
        self.status[0], self.status[1] = (1.0 if problem else 0.0), (0.0 if problem else loss)
        if self.status_first:
            self.status[2] = 1.0 if self.large else 0.0
            self._start_status()
        for number in range(len(self.plan)):
            if self.pending[number] is None:
                self._start(number)
        if self.status_first:
            self.status_pending.wait()
            self.events.append((time.perf_counter(), "done", -1))
            self.split_safe = float(self.status[2]) == 0.0  # no rank's gradient too large to step bucket by bucket
        if wait or not self.status_first:
            self.complete()
        return problem, float(self.status[0]), float(self.status[1])

    def in_flight(self) -> bool:
        """True between ``finish(wait=False)`` and ``complete``."""
        return self.status_pending is not None

    def wait_bucket(self, number: int) -> None:
        """Wait until bucket ``number``'s reduction is complete on this rank."""
        pending = self.pending[number]
        if not pending.finished:
            pending.wait()
            self.events.append((time.perf_counter(), "done", number))

    def complete(self) -> None:
        """Wait for every bucket still in flight; the next step begins."""
        for number in range(len(self.plan)):
            self.wait_bucket(number)
        if self.progress is not None:
            self.progress.busy.clear()
        self.last_events = self.events
        self._begin()
