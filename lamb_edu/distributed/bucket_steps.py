"""The optimizer's step taken bucket by bucket, each bucket as soon as its sum has arrived.

PyTorch's DDP can run the optimizer inside its communication hook (``_register_fused_optim``), and
ZeRO and Apex's distributed LAMB step a bucket while the next one is still being reduced: the
step of the early buckets then hides the reduction of the later ones. LAMB and LARS scale each layer
(tensor) by its own trust ratio, and Adam works element by element, so a bucket that holds whole
parameters can be stepped alone: the parts add up to the same step (``Optimizer.step_parameters``;
``ShardedOptimizer.step_layers`` for ZeRO-1, whose per-layer norms then take one small all-reduce
per bucket instead of one per step).

A step that fails must change no parameter. The buckets leave during backward, before anyone knows
whether some rank's loss or gradient is NaN, so no bucket is stepped before that is known:
``DataParallel.defer`` sends the status (problems, the sum of the losses) on its own right after
backward, before the last bucket, and ``all_reduce_gradients`` waits for that small message alone
(raising ``RankFailure`` as before, with nothing stepped). The status also counts the ranks whose
gradient is so large that a sum over the ranks could overflow (``buckets.SPLIT_MARGIN``): when that is
0 every bucket's sum is finite and its square too, so the optimizer's own checks cannot refuse a
later bucket after an earlier one was stepped. Otherwise ``step`` waits for everything and takes
the ordinary checked step. Undoing a step instead would mean copying w, m and v of every early
bucket each step, to restore them on the rare failure; waiting for a 12-byte message costs less.

``step`` runs where ``optimizer.step()`` runs in the loop (after ``all_reduce_gradients``), with the
learning rate a scheduler set, so results equal the ordinary step to float32 rounding. Between
``all_reduce_gradients`` and ``step`` the gradients are not all summed yet: read them after ``step``.
"""

from __future__ import annotations

import time
from typing import Any

from lamb_edu.distributed.data_parallel import DataParallel
from lamb_edu.distributed.sharded import ShardedOptimizer
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["BucketSteps"]


class BucketSteps:
    """``BucketSteps(optimizer, parallel)``: ``optimizer`` (an ``Optimizer`` or a ``ShardedOptimizer`` over
    ``parallel``) stepped bucket by bucket; use it in the loop in place of the optimizer.

    ``step()`` waits for bucket 0 (the last layers, reduced first), steps its parameters, then
    bucket 1, and so on, while the later buckets are still in flight. Refused (ValueError): an
    optimizer with ``max_grad_norm`` (its clip needs the whole gradient's norm before any step) or one
    with its own ``step`` (Lookahead).
    """

    def __init__(self, optimizer: Any, parallel: DataParallel) -> None:
        self.sharded = isinstance(optimizer, ShardedOptimizer)
        base = optimizer.base if self.sharded else optimizer
        if not isinstance(base, Optimizer) or type(base).step is not Optimizer.step:
            raise ValueError("BucketSteps needs an optimizer stepped parameter by parameter, "
                             f"got {type(base).__name__}")
        if base.max_grad_norm is not None:
            raise ValueError("BucketSteps cannot step bucket by bucket with max_grad_norm (the clip needs the whole "
                             "gradient's norm first): leave max_grad_norm at None or step the optimizer itself")
        if not self.sharded and {id(p) for p in parallel.flat.parameters} != {
                id(p) for group in base.param_groups for p in group["params"]}:
            raise ValueError("the optimizer and the data-parallel model must hold the same parameters")
        self.optimizer, self.parallel = optimizer, parallel
        self.param_groups = optimizer.param_groups
        parallel.defer()

    @property
    def state(self) -> Any:
        """The optimizer's ``state``."""
        return self.optimizer.state

    @property
    def saves_as(self) -> Any:
        """The optimizer whose ``state_dict`` a checkpoint names."""
        return getattr(self.optimizer, "saves_as", self.optimizer)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        self.optimizer.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's ``state_dict()`` (a collective for a sharded one)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The optimizer's ``load_state_dict``."""
        self.optimizer.load_state_dict(state_dict)

    def traffic(self) -> dict[str, int]:
        """Bytes each collective of a step carries (the optimizer's, or ``DataParallel.traffic``)."""
        return self.optimizer.traffic() if self.sharded else self.parallel.traffic()

    def step(self) -> None:
        """Wait for each bucket in turn and step its parameters; the whole step when a bucket could fail alone."""
        parallel, buckets = self.parallel, self.parallel.buckets
        if not buckets.in_flight():
            raise RuntimeError("BucketSteps.step() needs DataParallel.all_reduce_gradients() first, every step")
        if not buckets.split_safe:  # some rank's gradient is huge: check everything before stepping anything
            parallel.complete()
            self.optimizer.step()
            return
        if self.sharded:
            self.optimizer.begin_step()
        gathers = []
        for number, indices in enumerate(buckets.plan):
            parallel.wait_bucket(number)
            buckets.events.append((time.perf_counter(), "step", number))
            if self.sharded:  # ZeRO-1: the bucket's new parameters leave while the next bucket is stepped
                self.optimizer.step_layers(indices)
                gathers.append(self.optimizer.start_gather(*buckets.ranges[number]))
            else:
                self.optimizer.step_parameters([parallel.flat.parameters[index] for index in indices])
        parallel.complete()
        if self.sharded:
            self.optimizer.end_step(gathers)
