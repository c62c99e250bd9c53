"""``fit``: the epoch loop. Each step is the textbook one (forward, the task's loss, backward, step).

A task (tasks.py: MNIST classification, the masked-LM on tiny Shakespeare) gives the batches, the loss
and the scores; the loop is the same for all.

Around the step, small collaborators do one thing each: ``StepLogger`` (metrics.py) records losses,
norms and trust ratios; ``Checkpointer`` saves where the run is; ``EpochProgress`` draws the bar;
``all_finite`` and the step's own checks decide divergence; ``Workers`` (workers.py) say which part of
each global batch this process computes. A resumed run ends bit-identical to one never interrupted,
because each epoch's shuffle depends only on ``(seed, epoch)``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from lamb_edu.nn import Module
from lamb_edu.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from lamb_edu.train.divergence import all_finite
from lamb_edu.train.history import History
from lamb_edu.train.metrics import StepLogger
from lamb_edu.train.position import Position
from lamb_edu.train.progress import EpochProgress
from lamb_edu.train.step import train_step
from lamb_edu.train.tasks import Task, as_task
from lamb_edu.train.workers import SingleProcess, Workers

__all__ = ["fit", "Checkpointer", "TrainingStopped"]


class TrainingStopped(KeyboardInterrupt):
    """``fit`` stopped because ``stop()`` asked it to, between two steps; ``history`` is what it measured."""

    def __init__(self, history: History, checkpointed: bool) -> None:
        super().__init__(f"training stopped after step {history.steps}")
        self.history, self.checkpointed = history, checkpointed


@dataclass
class Checkpointer:
    """Saves the run to ``directory`` every ``every`` steps and at each epoch's end (nothing without a directory).

    With ``writes=False`` (a worker that is not the main one) it joins in gathering the state but writes nothing.
    """

    directory: str | os.PathLike | None
    every: int | None
    model: Module
    optimizer: Any
    scheduler: Any = None
    writes: bool = True

    def due(self, step: int) -> bool:
        """True when step ``step`` ends with a checkpoint (mid-epoch)."""
        return self.directory is not None and self.every is not None and step % self.every == 0

    def save(self, history: History, position: Position, started: float) -> None:
        """Write the checkpoint (the caller has checked that the weights are finite)."""
        if self.directory is not None:
            history.seconds = time.perf_counter() - started
            save_checkpoint(self.directory, self.model, self.optimizer, history, position, self.scheduler, self.writes)


@dataclass
class _Run:
    """What the epoch loop works on; one per ``fit`` call."""

    model: Module
    optimizer: Any
    scheduler: Any
    task: Task
    history: History
    position: Position
    logger: StepLogger
    checkpointer: Checkpointer
    workers: Workers
    micro_batch_size: int
    started: float
    stop: Callable[[], bool] | None = None

    def diverge(self, step: int) -> None:
        self.history.nonfinite_step = step

    def weights_finite_after(self, step: int) -> bool:
        """Non-finite weights are divergence too (``lr=1e308`` makes them ±inf with a finite loss)."""
        if all_finite(p.data for p in self.model.parameters()):
            return True
        self.diverge(step)
        return False


def _train_epoch(run: _Run, epochs: int, epoch_started: float, show_progress: bool) -> None:
    """Steps from ``run.position`` to the end of its epoch, or until divergence."""
    position, history = run.position, run.history
    label = f"epoch {position.epoch + 1}/{epochs}"
    with EpochProgress(show_progress, position.steps_per_epoch, position.batch, label) as bar:
        for xb, yb in run.task.batches(position.train_size, position.batch_size, position.seed, position.epoch,
                                       start=position.batch):
            if run.stop is not None and run.stop():
                position.epoch_seconds = time.perf_counter() - epoch_started
                run.checkpointer.save(history, position, run.started)
                raise TrainingStopped(history, checkpointed=run.checkpointer.directory is not None)
            step = position.step + 1
            run.logger.before_step(step)
            loss = train_step(run.model, run.optimizer, xb, yb, micro_batch_size=run.micro_batch_size,
                              workers=run.workers, objective=run.task.objective)
            if loss is None:
                run.diverge(step)
                run.logger.last_good_step(position.epoch)
                return
            if run.scheduler is not None:
                run.scheduler.step()
            position.advance(len(yb), loss)
            history.append_step(loss)
            run.logger.after_step(step, position.epoch)
            bar.update(step, loss)
            last_of_epoch = position.batch == position.steps_per_epoch
            if (run.checkpointer.due(step) or last_of_epoch) and not run.weights_finite_after(step):
                return
            if run.checkpointer.due(step) and not last_of_epoch:
                position.epoch_seconds = time.perf_counter() - epoch_started
                run.checkpointer.save(history, position, run.started)


def _end_epoch(run: _Run, epoch_started: float, callback: Callable | None) -> None:
    """Score the model, record the epoch, move to the next one and checkpoint it."""
    position, history = run.position, run.history
    record = {"epoch": position.epoch + 1, "steps": position.step,
              "train_loss": position.epoch_loss_sum / max(position.epoch_examples, 1),
              **run.task.evaluate(run.model, run.workers), "seconds": time.perf_counter() - epoch_started}
    if history.nonfinite_step is not None:
        record["nonfinite_step"] = history.nonfinite_step
    history.epochs.append(record)
    position.next_epoch()
    if history.nonfinite_step is None:
        run.checkpointer.save(history, position, run.started)
    if callback is not None:
        callback({"type": "epoch", **record})


def fit(
    model: Module,
    optimizer: Any,
    data: Any,
    epochs: int,
    batch_size: int,
    *,
    seed: int = 0,
    train_size: int | None = None,
    log_every: int = 10,
    scheduler: Any = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    accumulate: int = 1,
    workers: Workers | None = None,
    stop: Callable[[], bool] | None = None,
) -> History:
    """Train ``model`` on ``data`` (a ``Task``, or an ``MNIST`` of host arrays: its classification task).

    Returns the run's ``History``; each epoch's record holds what ``task.evaluate`` measured (tasks.py).
    Global batches of ``batch_size`` come from the first ``train_size`` training examples (all when
    None), shuffled each epoch by ``(seed, epoch)``; with ``accumulate=K`` each is computed as
    micro-batches of ⌈batch_size/K⌉ whose gradients are averaged into one step. ``scheduler`` has its
    ``step()`` called after every optimizer step. ``callback`` receives a dict for every logged step
    (``type`` "step") and every epoch (``type`` "epoch"). With ``checkpoint_dir`` a checkpoint is
    written every ``checkpoint_every`` steps and at the end of every epoch; ``resume=True`` starts from
    it when it exists. A non-finite loss, gradient or weight ends training: ``history.nonfinite_step`` holds
    the step. ``stop()`` is asked before every step; when it says True, ``fit`` checkpoints and raises
    ``TrainingStopped`` (a KeyboardInterrupt). ``workers`` (default: this process alone) is the seam
    for data-parallel training: each worker computes its part of every global batch (in ``accumulate``
    micro-batches) and only the main one checkpoints and shows progress.
    """
    workers = workers if workers is not None else SingleProcess()
    task = as_task(data)
    count = _check_arguments(task.size, epochs, batch_size, train_size, log_every, checkpoint_every, accumulate,
                             checkpoint_dir, resume)
    micro_batch_size = _micro_batch_size(batch_size, accumulate, workers)
    named = list(model.named_parameters())
    history = History([name for name, _ in named])
    position = Position(seed=seed, batch_size=batch_size, train_size=count, accumulate=accumulate)
    if resume and has_checkpoint(checkpoint_dir):
        history, position = load_checkpoint(checkpoint_dir, model, optimizer, scheduler, expected=position)
    run = _Run(model, optimizer, scheduler, task, history, position,
               StepLogger(history, optimizer, [p for _, p in named], log_every, callback),
               Checkpointer(checkpoint_dir, checkpoint_every, model, optimizer, scheduler, writes=workers.is_main),
               workers, micro_batch_size, time.perf_counter() - history.seconds, stop)
    while position.epoch < epochs and history.nonfinite_step is None:
        epoch_started = time.perf_counter() - position.epoch_seconds
        _train_epoch(run, epochs, epoch_started, progress and workers.is_main)
        _end_epoch(run, epoch_started, callback)
    history.seconds = time.perf_counter() - run.started
    return history


def _micro_batch_size(batch_size: int, accumulate: int, workers: Workers) -> int:
    """Examples per forward pass: each worker computes its part of a batch as ``accumulate`` micro-batches."""
    largest_part = -(-batch_size // workers.world_size)
    if accumulate > largest_part:
        raise ValueError(f"accumulate must be at most the {largest_part} examples each of the {workers.world_size} "
                         f"workers computes, got {accumulate}")
    return -(-largest_part // accumulate)


def _check_arguments(available: int, epochs: int, batch_size: int, train_size: int | None, log_every: int,
                     checkpoint_every: int | None, accumulate: int, checkpoint_dir: Any, resume: bool) -> int:
    """Every argument checked before anything runs; returns the number of training examples used."""
    if epochs < 0 or batch_size < 1 or log_every < 1:
        raise ValueError(f"need epochs >= 0, batch_size >= 1 and log_every >= 1; "
                         f"got {epochs}, {batch_size}, {log_every}")
    if train_size is not None and not 1 <= train_size <= available:
        raise ValueError(f"train_size must be between 1 and {available}, got {train_size}")
    count = train_size or available
    if batch_size > count:
        raise ValueError(f"batch_size {batch_size} is larger than the {count} training examples")
    if not 1 <= accumulate <= batch_size:
        raise ValueError(f"accumulate must be between 1 and batch_size ({batch_size}), got {accumulate}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    return count
