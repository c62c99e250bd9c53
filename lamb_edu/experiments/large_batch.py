"""The large-batch study: what LAMB is for, measured on MNIST (``large_batch``).

LAMB (You et al. 2019) and LARS (You, Gitman & Ginsburg 2017) were made to keep training well when
the global batch grows to thousands of examples, so that the work of one step can be spread over
many workers. Nado et al. (2021, "A Large Batch Optimizer Reality Check") found that Nesterov
momentum and Adam, tuned as carefully, keep up with them. This study asks the same question on a
laptop: SGD with Nesterov momentum, AdamW, LARS and LAMB, at global batch sizes from 128 to 16384,
each for the same number of epochs (so a batch four times larger takes four times fewer steps),
with a linear warm-up and a linear decay to zero.

Two tuning protocols, side by side in one run table (each run says its ``protocol``):

- **lr_grid**: only the lr is tuned, the best of a log-spaced grid (factor 2 between points), with
  the warm-up fixed at 10 % of the steps and every other knob at its default. Beside it the
  **scaled** lr: the smallest batch's tuned lr scaled by a rule, linear for SGD and LARS (Goyal et
  al. 2017), square root for AdamW and LAMB (the LAMB paper's rule).
- **quasi_random** (``experiments.tuning``, after Nado et al.): the same budget of ``trials`` per
  optimizer and batch size, drawn from a scrambled Halton sequence over the lr, 1 - β1 (the
  momentum), the warm-up share (with a floor in epochs), the weight decay and, for AdamW and LAMB, ε.

In both, the choice is made on seed 0 by the accuracy on held-out training images (the validation
split, never the test set), and the chosen setting is trained again from ``repeat_seeds`` (1 and 2):
the reported accuracy is theirs, so the luck that made a setting win on seed 0 does not count.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import partial
from typing import Any, Callable, Sequence

from lamb_edu import data, nn
from lamb_edu.experiments.batch_sweep import BatchRun, RunQueue, mark_tuned, study_data
from lamb_edu.experiments.critical_batch import steps_to_target_cell
from lamb_edu.experiments.large_batch_result import LargeBatchResult
from lamb_edu.experiments.large_batch_settings import FULL, QUICK, LargeBatchSettings
from lamb_edu.experiments.run_pool import RunPool, default_workers, train_in_waves
from lamb_edu.experiments.study_optimizers import STUDY_OPTIMIZERS, StudyOptimizer
from lamb_edu.experiments.tuning import tune

__all__ = ["StudyOptimizer", "STUDY_OPTIMIZERS", "LargeBatchSettings", "FULL", "QUICK", "LargeBatchResult",
           "large_batch"]


def large_batch(quick: bool = False, data_dir: Any = None, progress: bool = False,
                settings: LargeBatchSettings | None = None, known: Sequence[BatchRun] = (),
                journal: Any = None, workers: int | None = None) -> LargeBatchResult:
    """Run the large-batch study (``FULL``, or ``QUICK`` with ``quick``; ``settings`` overrides both).

    Per optimizer, the lr-grid protocol (the grid at every batch size from seed 0, its best by
    validation accuracy "tuned"; the rule-scaled lr from the smallest batch's tuned lr, "scaled";
    the tuned runs again from each of ``repeat_seeds``), then the quasi-random protocol at
    ``settings.tuned_batch_sizes``, then the steps-to-target measure (``critical_batch``). ``known``
    runs (an earlier result's, same settings) and the runs of a ``journal`` file are not trained
    again (``batch_sweep.RunQueue``). ``workers`` processes train the runs, each on one thread
    (``run_pool``; None: one per core, at most 4); 0 trains them one after another in this process,
    on its threads.
    """
    settings = settings or (QUICK if quick else FULL)
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    started = time.perf_counter()
    split = study_data(data.load_mnist(data_dir), settings.train_size, settings.validation_size, settings.test_size,
                       settings.curve_size)
    hidden = list(settings.hidden)
    options = {"warmup_fraction": settings.warmup_fraction, "target": settings.target}
    queue = RunQueue(lambda seed: nn.MLP([784, *hidden, 10], seed=seed), split, epochs=settings.epochs,
                     progress=progress, description="large_batch", known=known, journal=journal, **options)
    reports = len(settings.repeat_seeds)
    # the grid (unless its runs are known), the repeats and the trials are known ahead; a scaled lr off the
    # grid adds a run when it starts
    queue.expect(sum(len(settings.batch_sizes) * (len(o.grid) + reports * len(settings.repeat_rules)) * (not known)
                     + len(settings.tuned_batch_sizes) * (settings.trials + reports) for o in settings.optimizers)
                 + settings.steps_trials * len(settings.measured_batch_sizes) * len(settings.optimizers))
    cells = _cells(queue, settings)
    try:
        if workers:
            spec = {"data_dir": None if data_dir is None else str(data_dir), "train_size": settings.train_size,
                    "validation_size": settings.validation_size, "test_size": settings.test_size,
                    "curve_size": settings.curve_size, "hidden": hidden, "epochs": settings.epochs,
                    "options": options, "optimizers": [o.describe() for o in settings.optimizers]}
            with RunPool(spec, workers) as pool:
                train_in_waves(cells, queue, pool)
        runs = [run for cell in cells for run in cell()]
    finally:
        queue.close()
    return LargeBatchResult(runs, settings, bool(quick), time.perf_counter() - started, workers)


def _cells(queue: RunQueue, settings: LargeBatchSettings) -> list[Callable[[], list[BatchRun]]]:
    """The study as cells, each a function that returns its runs: the lr grid per optimizer, then the others."""
    cells: list[Callable[[], list[BatchRun]]] = [partial(_lr_grid, queue, o, settings) for o in settings.optimizers]
    for kind, batch in _cell_order(settings):
        for o in settings.optimizers:
            if kind == "quasi_random":
                cells.append(partial(_quasi_random, queue, o, batch, settings))
            else:
                cells.append(partial(steps_to_target_cell, queue, o, batch, settings.steps_trials, settings.draw_seed,
                                     settings.steps_per_doubling, settings.warmup_floor_epochs))
    return cells


def _cell_order(settings: LargeBatchSettings) -> list[tuple[str, int]]:
    """The (protocol, batch size) cells after the lr grid: the cheap steps-to-target cells first (batches at most
    a quarter of the smallest quasi-random one; they stop at the target), then the quasi-random cells, largest
    batch first, then the other steps-to-target cells. An interrupted study (see ``journal``) keeps whole cells."""
    tuned = sorted(settings.tuned_batch_sizes, reverse=True) if settings.trials else []
    steps = sorted(settings.measured_batch_sizes) if settings.steps_trials else []
    cheap = [b for b in steps if not tuned or 4 * b <= min(tuned)]
    return ([("steps_to_target", b) for b in cheap] + [("quasi_random", b) for b in tuned]
            + [("steps_to_target", b) for b in steps if b not in cheap])


def _lr_grid(queue: RunQueue, study_optimizer: StudyOptimizer, settings: LargeBatchSettings) -> list[BatchRun]:
    """The lr-grid protocol of one optimizer: the grid, the scaled runs and the repeats, in that order."""
    name, make = study_optimizer.name, study_optimizer.make
    runs = mark_tuned([queue.run(name, make, batch, lr)
                       for batch in settings.batch_sizes for lr in study_optimizer.grid])
    tuned = {run.batch_size: run.lr for run in runs if run.lr_rule == "tuned"}
    base_batch = settings.batch_sizes[0]
    scaled = {}
    for batch in settings.batch_sizes:
        lr = study_optimizer.scale(tuned[base_batch], batch, base_batch)
        on_grid = [point for point in study_optimizer.grid if math.isclose(point, lr, rel_tol=1e-6)]
        scaled[batch] = on_grid[0] if on_grid else lr  # the grid's own float, so the run is found again
        runs.append(queue.run(name, make, batch, scaled[batch], lr_rule="scaled"))
    chosen = {"tuned": tuned, "scaled": scaled}
    for seed in settings.repeat_seeds:
        for rule in settings.repeat_rules:
            for batch in settings.batch_sizes:
                runs.append(queue.run(name, make, batch, chosen[rule][batch], seed, lr_rule=rule))
    return runs


def _quasi_random(queue: RunQueue, study_optimizer: StudyOptimizer, batch: int,
                  settings: LargeBatchSettings) -> list[BatchRun]:
    """The quasi-random protocol at one batch size: ``settings.trials`` trials, then the best on the repeat seeds."""
    def train_one(values: dict[str, Any], seed: int) -> BatchRun:
        knobs = {key: value for key, value in values.items() if key != "lr"}
        return queue.run(study_optimizer.name, study_optimizer.maker(knobs),
                         batch, values["lr"], seed, "report", protocol="quasi_random", settings=knobs,
                         warmup_fraction=knobs["warmup_share"], warmup_floor_epochs=settings.warmup_floor_epochs)

    tuning = tune(train_one, study_optimizer.space, settings.trials, score=lambda run: run.validation_accuracy,
                  draw_seed=settings.draw_seed, selection_seed=0, report_seeds=settings.repeat_seeds)
    trials = [replace(trial.result, trial=trial.index, lr_rule="tuned" if trial.index == tuning.best_index else "trial")
              for trial in tuning.trials]
    return trials + [replace(run, lr_rule="tuned") for run in tuning.reports]
