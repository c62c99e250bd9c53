"""One run at a global batch size, and the grid of batch sizes × learning rates: ``train_at_batch``, ``sweep``.

Every run has the same shape, the one the large-batch papers use: a fixed budget in *epochs*, so a
batch twice as large takes half as many steps; a linear warm-up over the first ``warmup_fraction``
of those steps, then a linear decay to zero (``schedules.WarmupPolynomialDecay``). The learning rate
is tuned on held-out training images (the *validation* split, never the test set); the test set is
only reported. Accuracy over time is measured on a small slice of the validation split at steps
spaced evenly on a log scale (``evaluation_steps``), which is what "steps to reach a target" reads.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, NamedTuple, Sequence

from lamb_edu import backend, train
from lamb_edu.data import prepare
from lamb_edu.experiments.comparison import _progress
from lamb_edu.train.divergence import detect_divergence
from lamb_edu.optim import schedules

np = backend.np  # run records are small host values

__all__ = ["BatchRun", "StudyData", "study_data", "evaluation_steps", "steps_to_target", "train_at_batch", "sweep",
           "RUN_FIELDS", "RunQueue", "mark_tuned", "check_grid"]

# The columns of the run table, in order (the CSV of `lamb-edu sweep`, the rows of results.json).
RUN_FIELDS = ("optimizer", "batch_size", "lr", "lr_rule", "seed", "epochs", "steps", "warmup_steps",
              "final_test_accuracy", "best_test_accuracy", "validation_accuracy", "target", "steps_to_target",
              "seconds", "diverged", "status")


@dataclass
class BatchRun:
    """One training run at global batch ``batch_size`` and peak learning rate ``lr``.

    ``lr_rule`` says how the lr was chosen: "grid" (one point of the sweep), "tuned" (the grid point
    with the best validation accuracy at this batch size) or "scaled" (the tuned lr of the smallest
    batch, scaled by the optimizer's rule). Accuracies are fractions: ``final_test_accuracy`` after
    the last epoch and ``best_test_accuracy`` over the epochs, on the test images;
    ``validation_accuracy`` at the end, on the validation split. ``steps_to_target`` is the first
    evaluated step whose validation-slice accuracy reached ``target`` (None if none did);
    ``eval_steps``/``eval_accuracy`` are that curve. ``diverged`` is True when
    ``detect_divergence`` says so (a non-finite loss, forgetting, or weights ten times their start);
    ``status`` is its verdict ("learned", "diverged", "did not learn").
    """

    optimizer: str
    batch_size: int
    lr: float
    lr_rule: str
    seed: int
    epochs: int
    steps: int
    warmup_steps: int
    final_test_accuracy: float
    best_test_accuracy: float
    validation_accuracy: float
    target: float
    steps_to_target: int | None
    seconds: float
    diverged: bool
    status: str
    eval_steps: list[int] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The run as one row of the run table (plain JSON values, no curve)."""
        values = asdict(self)
        return {key: values[key] for key in RUN_FIELDS}


class StudyData(NamedTuple):
    """The splits a study trains on: ``mnist`` (its train images are the training split, its test
    images the test set ``fit`` scores each epoch), ``validation`` (held-out training images, prepared
    ``(x, y)``: it picks the tuned lr) and ``curve`` (the first images of ``validation``: accuracy
    over time)."""

    mnist: Any
    validation: tuple[Any, Any]
    curve: tuple[Any, Any]

    @property
    def train_size(self) -> int:
        """Training examples per epoch."""
        return len(self.mnist.train_images)


def study_data(mnist: Any, train_size: int, validation_size: int, test_size: int | None = None,
               curve_size: int = 2000) -> StudyData:
    """Split MNIST: the first ``train_size`` training images train, the last ``validation_size`` validate.

    The two never overlap (ValueError when they would); ``test_size`` keeps only the first test
    images (all when None); ``curve_size`` validation images are scored during training.
    """
    available = len(mnist.train_images)
    if train_size < 1 or validation_size < 1 or train_size + validation_size > available:
        raise ValueError(f"need train_size >= 1, validation_size >= 1 and their sum at most the {available} training "
                         f"images; got {train_size} + {validation_size}")
    test_size = len(mnist.test_images) if test_size is None else test_size
    validation = prepare(mnist.train_images[-validation_size:], mnist.train_labels[-validation_size:])
    subset = mnist._replace(train_images=mnist.train_images[:train_size], train_labels=mnist.train_labels[:train_size],
                            test_images=mnist.test_images[:test_size], test_labels=mnist.test_labels[:test_size])
    curve = min(curve_size, validation_size)
    return StudyData(subset, validation, (validation[0][:curve], validation[1][:curve]))


def evaluation_steps(total_steps: int, per_doubling: int = 4) -> list[int]:
    """Steps 1 … ``total_steps`` spaced evenly on a log scale (``per_doubling`` per factor 2), the last included.

    Steps to a target are then known to within a factor 2^(1/per_doubling) at every batch size.
    """
    count = int(math.log2(max(total_steps, 1)) * per_doubling) + 1
    steps = {min(total_steps, round(2 ** (k / per_doubling))) for k in range(count + 1)}
    return sorted(steps | {total_steps})


def steps_to_target(eval_steps: Sequence[int], eval_accuracy: Sequence[float], target: float) -> int | None:
    """The first of ``eval_steps`` whose accuracy is at least ``target``, or None."""
    for step, accuracy in zip(eval_steps, eval_accuracy):
        if accuracy >= target:
            return int(step)
    return None


def train_at_batch(
    make_model: Callable[[int], Any], make_optimizer: Callable[[list[Any], float], Any], data: StudyData, *,
    optimizer: str, batch_size: int, lr: float, epochs: int, seed: int = 0, warmup_fraction: float = 0.1,
    target: float = 0.95, accumulate: int = 1, lr_rule: str = "grid", on_step: Callable[[int], Any] | None = None,
) -> BatchRun:
    """Train ``make_model(seed)`` with ``make_optimizer(parameters, lr)`` at global batch ``batch_size``.

    ``epochs`` passes over ``data.mnist``'s training images, with the warm-up-then-decay schedule;
    ``accumulate`` splits each batch into that many micro-batches (one step per global batch).
    ``optimizer`` is the name the run table records; ``on_step(step)`` is called after the steps.
    """
    if batch_size > data.train_size:
        raise ValueError(f"batch size {batch_size} is larger than the {data.train_size} training examples")
    model = make_model(seed)
    optim_ = make_optimizer(model.parameters(), lr)
    total = epochs * math.ceil(data.train_size / batch_size)
    warmup = min(total - 1, math.ceil(warmup_fraction * total))
    scheduler = schedules.LRScheduler(optim_, schedules.WarmupPolynomialDecay(warmup, max(total, warmup + 1)))
    wanted, curve = set(evaluation_steps(total)), ([], [])

    def score(step: int) -> None:
        curve[0].append(step)
        curve[1].append(train.evaluate(model, *data.curve)[1])

    taken = [0]  # steps completed so far

    def before_step() -> bool:
        # fit asks this before every step, once the previous one is complete: a per-step hook that costs
        # nothing (logging every step through ``callback`` would slow small batches by a third)
        if taken[0] in wanted:
            score(taken[0])
        if on_step is not None and taken[0]:
            on_step(taken[0])
        taken[0] += 1
        return False  # never asks fit to stop

    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported by its verdict, not warnings
        history = train.fit(model, optim_, data.mnist, epochs, batch_size, seed=seed, scheduler=scheduler,
                            progress=False, accumulate=accumulate, stop=before_step)
    if history.steps and history.steps not in curve[0][-1:]:
        score(history.steps)  # the last step, or the last good one of a diverged run
    seconds = time.perf_counter() - started
    verdict = detect_divergence(history.step_loss, history.weight_norm, history.log_steps, history.diverged)
    accuracies = [record["test_accuracy"] for record in history.epochs]
    validation_accuracy = train.evaluate(model, *data.validation)[1]
    return BatchRun(
        optimizer=optimizer, batch_size=batch_size, lr=float(lr), lr_rule=lr_rule, seed=seed, epochs=epochs,
        steps=len(history.step_loss), warmup_steps=warmup,
        final_test_accuracy=float(accuracies[-1]) if accuracies else math.nan,
        best_test_accuracy=float(max(accuracies)) if accuracies else math.nan,
        validation_accuracy=float(validation_accuracy),
        target=target, steps_to_target=steps_to_target(*curve, target), seconds=seconds,
        diverged=verdict.status == "diverged", status=verdict.status,
        eval_steps=list(curve[0]), eval_accuracy=[float(a) for a in curve[1]],
    )


class RunQueue:
    """Trains runs one after another behind one progress bar, each (optimizer, batch, lr, seed) once.

    ``run`` returns a ``BatchRun``; asking again for a run already trained returns a copy with the
    new ``lr_rule`` and trains nothing. The bar counts training images, not steps, because a run's
    time follows its images: 10 epochs take about as long at batch 16 384 (30 steps) as at batch 128
    (3840 steps). ``expect()`` adds one run to the bar's total ahead (runs not expected extend it when
    they start).
    """

    def __init__(self, make_model: Callable[[int], Any], data: StudyData, *, epochs: int, warmup_fraction: float = 0.1,
                 target: float = 0.95, accumulate: int = 1, progress: bool = False, description: str = "sweep") -> None:
        self.make_model, self.data, self.epochs = make_model, data, epochs
        self.options = dict(warmup_fraction=warmup_fraction, target=target, accumulate=accumulate)
        self.bar = _progress(progress, 0, description, unit="image")
        self.trained: dict[tuple, BatchRun] = {}
        self.images = epochs * data.train_size  # the images one run trains on, whatever its batch size

    def expect(self, runs: int = 1) -> None:
        """Count ``runs`` more runs in the progress bar's total."""
        if self.bar is not None:
            self.bar.total += runs * self.images

    def run(self, optimizer: str, make_optimizer: Callable[[list[Any], float], Any], batch_size: int, lr: float,
            seed: int = 0, lr_rule: str = "grid") -> BatchRun:
        """The run of ``optimizer`` at (``batch_size``, ``lr``, ``seed``), trained unless it already was."""
        key = (optimizer, int(batch_size), float(lr), int(seed))
        if key not in self.trained:
            done = self.bar.n if self.bar is not None else 0
            if self.bar is not None:
                self.bar.total = max(self.bar.total, done + self.images)  # a run nobody expected
                self.bar.set_postfix_str(f"{optimizer}, batch {batch_size}, lr {lr:.3g}, seed {seed}")
            on_step = None if self.bar is None else (
                lambda step: self.bar.update(done + min(step * batch_size, self.images) - self.bar.n))
            self.trained[key] = train_at_batch(self.make_model, make_optimizer, self.data, optimizer=optimizer,
                                               batch_size=int(batch_size), lr=float(lr), epochs=self.epochs, seed=seed,
                                               on_step=on_step, **self.options)
            if self.bar is not None:
                self.bar.update(done + self.images - self.bar.n)  # a run that stopped early
        return replace(self.trained[key], lr_rule=lr_rule)

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def sweep(
    make_model: Callable[[int], Any], make_optimizer: Callable[[list[Any], float], Any], data: StudyData, *,
    optimizer: str, batch_sizes: Sequence[int], lrs: Sequence[float], epochs: int, seed: int = 0,
    warmup_fraction: float = 0.1, target: float = 0.95, accumulate: int = 1, progress: bool = False,
) -> list[BatchRun]:
    """Train every batch size × learning rate once (``train_at_batch``), behind one progress bar.

    Every input is checked before anything trains: ValueError for an empty list, a batch size
    larger than the training split or below ``accumulate``, or a learning rate that is not a
    finite number > 0. Runs come back batch size by batch size, learning rates in the given order;
    the best validation accuracy at each batch size is marked ``lr_rule="tuned"`` (see ``mark_tuned``).
    """
    check_grid(batch_sizes, lrs, data.train_size, accumulate, epochs)
    queue = RunQueue(make_model, data, epochs=epochs, warmup_fraction=warmup_fraction, target=target,
                     accumulate=accumulate, progress=progress, description=f"{optimizer} sweep")
    queue.expect(len(batch_sizes) * len(lrs))
    try:
        runs = [queue.run(optimizer, make_optimizer, batch, lr, seed) for batch in batch_sizes for lr in lrs]
    finally:
        queue.close()
    return mark_tuned(runs)


def mark_tuned(runs: list[BatchRun]) -> list[BatchRun]:
    """``runs`` with, per optimizer and batch size, the grid run of best validation accuracy relabelled "tuned".

    Ties go to the smaller learning rate; the test set plays no part in the choice.
    """
    best: dict[tuple[str, int], BatchRun] = {}
    for run in runs:
        key = (run.optimizer, run.batch_size)
        if run.lr_rule == "grid" and (key not in best or (run.validation_accuracy, -run.lr) >
                                      (best[key].validation_accuracy, -best[key].lr)):
            best[key] = run
    chosen = {id(run) for run in best.values()}
    return [replace(run, lr_rule="tuned") if id(run) in chosen else run for run in runs]


def check_grid(batch_sizes: Sequence[int], lrs: Sequence[float], train_size: int, accumulate: int = 1,
               epochs: int = 1) -> None:
    """ValueError, naming the bad value, unless the grid can run: see ``sweep``."""
    if not len(batch_sizes):
        raise ValueError("the list of batch sizes is empty")
    if not len(lrs):
        raise ValueError("the list of learning rates is empty")
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"accumulate must be an integer >= 1, got {accumulate!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    for batch in batch_sizes:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not accumulate <= batch <= train_size:
            raise ValueError(f"batch size {batch!r} must be an integer between accumulate ({accumulate}) and the "
                             f"{train_size} training examples")
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
            raise ValueError(f"learning rate {lr!r} must be a finite number > 0")
