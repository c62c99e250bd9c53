"""One run at a global batch size, and the grid of batch sizes × learning rates: ``train_at_batch``, ``sweep``.

Every run has the same shape, the one the large-batch papers use: a fixed budget in *epochs*, so a
batch twice as large takes half as many steps; a linear warm-up over the first ``warmup_fraction``
of those steps, then a linear decay to zero (``schedules.WarmupPolynomialDecay``). The learning rate
is tuned on held-out training images (the *validation* split, never the test set); the test set is
only reported. Accuracy over time is measured on a small slice of the validation split at steps
spaced evenly on a log scale (``evaluation_steps``), which is what "steps to reach a target" reads.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from lamb_edu import backend, host_memory, train
from lamb_edu.data import prepare
from lamb_edu.experiments.batch_run import RUN_FIELDS, BatchRun, PendingRun
from lamb_edu.experiments.comparison import _progress
from lamb_edu.experiments.tuning import warmup_steps
from lamb_edu.optim import schedules
from lamb_edu.train.divergence import detect_divergence

np = backend.np  # run records are small host values

__all__ = ["BatchRun", "StudyData", "study_data", "evaluation_steps", "steps_to_target", "train_at_batch", "sweep",
           "RUN_FIELDS", "RunQueue", "mark_tuned", "check_grid", "run_to_json", "run_from_json"]

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


@dataclass
class RunOptions:
    """How one run trains besides its optimizer, batch and lr (``train_at_batch`` takes them as keywords).

    ``warmup_fraction`` is the warm-up's share of the steps, and it lasts at least
    ``warmup_floor_epochs`` epochs (``tuning.warmup_steps``). The validation slice is scored
    ``per_doubling`` times per doubling of the step count. ``stop_at_target`` ends the run at the
    first evaluation that reaches ``target``, and ``max_steps`` after that many steps: what the
    steps-to-target measure needs (such a run has no test accuracy: NaN).
    """

    warmup_fraction: float = 0.1
    warmup_floor_epochs: float = 0.0
    target: float = 0.95
    accumulate: int = 1
    per_doubling: int = 4
    stop_at_target: bool = False
    max_steps: int | None = None


class _Watch:
    """Scores the validation slice at the planned steps and says when to stop (``fit``'s ``stop`` hook)."""

    def __init__(self, model: Any, data: StudyData, total: int, options: RunOptions, on_step: Any) -> None:
        self.model, self.data, self.options, self.on_step = model, data, options, on_step
        self.wanted = set(evaluation_steps(total, options.per_doubling))
        self.steps, self.accuracy, self.taken, self.stopped = [], [], 0, False

    def score(self, step: int) -> None:
        self.steps.append(step)
        self.accuracy.append(train.evaluate(self.model, *self.data.curve)[1])

    def __call__(self) -> bool:
        # fit asks this before every step, once the previous one is complete: a per-step hook that costs
        # nothing (logging every step through ``callback`` would slow small batches by a third)
        if self.taken in self.wanted:
            self.score(self.taken)
        if self.on_step is not None and self.taken:
            self.on_step(self.taken)
        reached = self.options.stop_at_target and self.accuracy and self.accuracy[-1] >= self.options.target
        if reached or (self.options.max_steps is not None and self.taken >= self.options.max_steps):
            self.stopped = True
            return True
        self.taken += 1
        return False


def train_at_batch(
    make_model: Callable[[int], Any], make_optimizer: Callable[[list[Any], float], Any], data: StudyData, *,
    optimizer: str, batch_size: int, lr: float, epochs: int, seed: int = 0, lr_rule: str = "grid",
    on_step: Callable[[int], Any] | None = None, protocol: str = "lr_grid", trial: int | None = None,
    settings: dict[str, Any] | None = None, **options: Any,
) -> BatchRun:
    """Train ``make_model(seed)`` with ``make_optimizer(parameters, lr)`` at global batch ``batch_size``.

    ``epochs`` passes over ``data.mnist``'s training images, with the warm-up-then-decay schedule;
    ``options`` are the fields of ``RunOptions`` (warm-up, target, ``accumulate`` micro-batches per
    step, evaluation density, early stops). ``optimizer``, ``protocol``, ``trial`` and ``settings``
    are what the run table records; ``on_step(step)`` is called after the steps.
    """
    if batch_size > data.train_size:
        raise ValueError(f"batch size {batch_size} is larger than the {data.train_size} training examples")
    run_options = RunOptions(**options)
    model = make_model(seed)
    optim_ = make_optimizer(model.parameters(), lr)
    per_epoch = math.ceil(data.train_size / batch_size)
    total = epochs * per_epoch
    warmup = warmup_steps(total, per_epoch, run_options.warmup_fraction, run_options.warmup_floor_epochs)
    scheduler = schedules.LRScheduler(optim_, schedules.WarmupPolynomialDecay(warmup, max(total, warmup + 1)))
    watch = _Watch(model, data, total, run_options, on_step)
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported by its verdict, not warnings
        try:
            history = train.fit(model, optim_, data.mnist, epochs, batch_size, seed=seed, scheduler=scheduler,
                                progress=False, accumulate=run_options.accumulate, stop=watch)
        except train.TrainingStopped as stopped:  # an early stop asked for by the options
            history = stopped.history
    if history.steps and history.steps not in watch.steps[-1:]:
        watch.score(history.steps)  # the last step, or the last good one of a diverged run
    seconds = time.perf_counter() - started
    verdict = detect_divergence(history.step_loss, history.weight_norm, history.log_steps, history.diverged)
    accuracies = [] if watch.stopped else [record["test_accuracy"] for record in history.epochs]
    return BatchRun(
        optimizer=optimizer, batch_size=batch_size, lr=float(lr), lr_rule=lr_rule, seed=seed, epochs=epochs,
        steps=len(history.step_loss), warmup_steps=warmup,
        final_test_accuracy=float(accuracies[-1]) if accuracies else math.nan,
        best_test_accuracy=float(max(accuracies)) if accuracies else math.nan,
        validation_accuracy=float(train.evaluate(model, *data.validation)[1]),
        target=run_options.target, steps_to_target=steps_to_target(watch.steps, watch.accuracy, run_options.target),
        seconds=seconds, diverged=verdict.status == "diverged", status=verdict.status, protocol=protocol,
        trial=trial, settings=dict(settings or {}), eval_steps=list(watch.steps),
        eval_accuracy=[float(a) for a in watch.accuracy],
    )


class RunQueue:
    """Trains runs one after another behind one progress bar, each (optimizer, batch, lr, seed, settings) once.

    ``run`` returns a ``BatchRun``; asking again for a run already trained returns a copy with the
    new ``lr_rule``, ``protocol`` and ``trial`` and trains nothing. ``known`` runs count as trained
    (seeded runs are deterministic, so a stored run is the run). With ``journal`` (a path), every
    run trained is appended to that file as one JSON line, and the runs already in it are known: an
    interrupted study resumes where it stopped. The bar counts training images, not steps, because a
    run's time follows its images: 10 epochs take about as long at batch 16 384 (30 steps) as at batch
    128 (3840 steps). ``expect()`` adds one run to the bar's total ahead. ``options`` are
    ``RunOptions`` fields shared by every run. ``dry()`` and ``add()`` let worker processes train the
    runs instead (``experiments.run_pool``).
    """

    def __init__(self, make_model: Callable[[int], Any], data: StudyData, *, epochs: int, progress: bool = False,
                 description: str = "sweep", known: Sequence[BatchRun] = (), journal: Any = None,
                 **options: Any) -> None:
        self.make_model, self.data, self.epochs, self.options = make_model, data, epochs, options
        self.bar = _progress(progress, 0, description, unit="image")
        self.journal = None if journal is None else Path(journal)
        stored = _read_journal(self.journal) if self.journal is not None else []
        self.trained: dict[tuple, BatchRun] = {_key(run): run for run in [*known, *stored]}
        self.images = epochs * data.train_size  # the images one run trains on, whatever its batch size
        self.requests: dict[tuple, dict[str, Any]] | None = None  # a dry pass's requests (None: not dry)

    def expect(self, runs: int = 1) -> None:
        """Count ``runs`` more runs in the progress bar's total."""
        if self.bar is not None:
            self.bar.total += runs * self.images

    def run(self, optimizer: str, make_optimizer: Callable[[list[Any], float], Any], batch_size: int, lr: float,
            seed: int = 0, lr_rule: str = "grid", *, protocol: str = "lr_grid", trial: int | None = None,
            settings: dict[str, Any] | None = None, **options: Any) -> BatchRun:
        """The run of ``optimizer`` at (``batch_size``, ``lr``, ``seed``, ``settings``), trained unless it was.

        ``options`` (``RunOptions`` fields) override the queue's for this run; they must follow from
        ``settings`` (the key), as a tuned warm-up share does.
        """
        settings = dict(settings or {})
        key = _key(BatchRun(optimizer, int(batch_size), float(lr), lr_rule, int(seed), 0, 0, 0, 0, 0, 0, 0, None, 0,
                            False, "", settings=settings))
        if key not in self.trained and self.requests is not None:
            self.requests.setdefault(key, {"optimizer": optimizer, "batch_size": int(batch_size), "lr": float(lr),
                                           "seed": int(seed), "settings": settings, "options": options})
            return PendingRun()
        if key not in self.trained:
            done = self.bar.n if self.bar is not None else 0
            if self.bar is not None:
                self.bar.total = max(self.bar.total, done + self.images)  # a run nobody expected
                self.bar.set_postfix_str(f"{optimizer}, batch {batch_size}, lr {lr:.3g}, seed {seed}")
            on_step = None if self.bar is None else (
                lambda step: self.bar.update(done + min(step * batch_size, self.images) - self.bar.n))
            self.trained[key] = train_at_batch(self.make_model, make_optimizer, self.data, optimizer=optimizer,
                                               batch_size=int(batch_size), lr=float(lr), epochs=self.epochs, seed=seed,
                                               on_step=on_step, protocol=protocol, settings=settings,
                                               **{**self.options, **options})
            self._write(self.trained[key])
            host_memory.release_freed_memory()  # what this run's steps kept for reuse: the next run is another shape
            if self.bar is not None:
                self.bar.update(done + self.images - self.bar.n)  # a run that stopped early
        return replace(self.trained[key], lr_rule=lr_rule, protocol=protocol, trial=trial)

    @contextmanager
    def dry(self) -> Iterator[dict[tuple, dict[str, Any]]]:
        """A dry pass: inside it ``run`` trains nothing; a run not yet trained is recorded in the dict this
        yields (its key to a request: optimizer, batch_size, lr, seed, settings and the run's options)
        and comes back as a ``PendingRun``."""
        self.requests = {}
        try:
            yield self.requests
        finally:
            self.requests = None

    def add(self, run: BatchRun) -> None:
        """Keep ``run``, trained elsewhere (a worker process), as if ``run`` had trained it."""
        self.trained[_key(run)] = run
        self._write(run)
        if self.bar is not None:
            self.bar.total = max(self.bar.total, self.bar.n + self.images)
            self.bar.update(self.images)

    def _write(self, run: BatchRun) -> None:
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as handle:  # one whole line per run, flushed at once
                handle.write(run_to_json(run) + "\n")

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def _key(run: BatchRun) -> tuple:
    """What makes two runs the same training: optimizer, batch, lr, seed and settings (not how they were chosen)."""
    return (run.optimizer, int(run.batch_size), float(run.lr), int(run.seed), json.dumps(run.settings, sort_keys=True))


def _read_journal(path: Path) -> list[BatchRun]:
    """The runs of a journal file (none if it does not exist; a last line cut short is ignored)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(run_from_json(line))
        except json.JSONDecodeError:
            continue
    return runs


def run_to_json(run: BatchRun) -> str:
    """``run`` as one line of JSON: its row and its accuracy curve (a journal's line, a worker's answer)."""
    return json.dumps({**run.row(), "eval_steps": run.eval_steps, "eval_accuracy": run.eval_accuracy})


def run_from_json(line: str) -> BatchRun:
    """The run of a ``run_to_json`` line (json.JSONDecodeError when it is not JSON)."""
    row = json.loads(line)
    return replace(BatchRun.from_row(row), eval_steps=row.get("eval_steps", []),
                   eval_accuracy=row.get("eval_accuracy", []))


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
