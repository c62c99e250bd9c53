"""Steps to a target measured the way Shallue et al. (2019) measure it, and the critical batch size.

"Measuring the Effects of Data Parallelism on Neural Network Training" tunes every batch size for
the fewest steps to reach a target (not for the best final accuracy) and reads the batch size where
doubling the batch stops halving the steps. Here, per optimizer and batch size:

- ``trials`` quasi-random settings of the lr, 1 - β1 and the warm-up share (``steps_space``; weight
  decay and ε at the lr grid's values) from the study's ``draw_seed``, each trained from seed 0
  within the study's epoch budget;
- the validation slice is scored ``per_doubling`` times per doubling of the step count (16: the
  steps are known to within 2^(1/16), 4.4 %; every step up to 23), and a run stops as soon as it
  reaches the target, or once it has taken as many steps as the best trial so far (it can no longer win);
- the cell's steps to target is its best trial's (``best_steps``).

``critical_batch_size`` then names the largest batch up to which every step up in batch size kept at
least half of the perfect speed-up (a batch 4 times larger took at most half the steps). It depends on
the target, which a report must state. One seed: this is the quick measure, not the accuracy verdict.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

from lamb_edu.experiments.batch_run import BatchRun
from lamb_edu.experiments.batch_sweep import RunQueue
from lamb_edu.experiments.study_optimizers import StudyOptimizer
from lamb_edu.experiments.tuning import SearchSpace, tune

__all__ = ["PROTOCOL", "steps_space", "steps_to_target_cell", "best_steps", "critical_batch_size"]

PROTOCOL = "steps_to_target"


def steps_space(study_optimizer: StudyOptimizer) -> SearchSpace:
    """The lr, 1 - β1 and warm-up share of ``study_optimizer.space``; weight decay and ε fixed at the grid's."""
    if study_optimizer.space is None:
        raise ValueError(f"optimizer {study_optimizer.name!r} has no search space")
    dimensions = tuple(d for d in study_optimizer.space.dimensions if d.name in ("lr", "one_minus_beta1",
                                                                                  "warmup_share"))
    fixed = {"weight_decay": study_optimizer.options.get("weight_decay", 0.0), "eps": 1e-6}
    return SearchSpace(dimensions, fixed)


def steps_to_target_cell(queue: RunQueue, study_optimizer: StudyOptimizer, batch: int, trials: int, draw_seed: int = 0,
                         per_doubling: int = 16, warmup_floor_epochs: float = 0.0) -> list[BatchRun]:
    """The ``trials`` runs of one optimizer at one batch size, tuned for the fewest steps to the queue's target.

    The best trial (fewest steps; ties: the earliest) is labelled ``lr_rule="tuned"``, the others "trial".
    """
    best = [math.inf]  # the fewest steps to the target so far: a later trial stops there

    def train_one(values: dict[str, Any], seed: int) -> BatchRun:
        knobs = {key: value for key, value in values.items() if key != "lr"}
        cap = None if math.isinf(best[0]) else int(best[0])
        run = queue.run(study_optimizer.name, study_optimizer.maker(knobs), batch, values["lr"], seed, "trial",
                        protocol=PROTOCOL, settings=knobs, warmup_fraction=knobs["warmup_share"],
                        warmup_floor_epochs=warmup_floor_epochs, per_doubling=per_doubling, stop_at_target=True,
                        max_steps=cap)
        if run.steps_to_target is not None:
            best[0] = min(best[0], run.steps_to_target)
        return run

    tuning = tune(train_one, steps_space(study_optimizer), trials, report_seeds=(), draw_seed=draw_seed,
                  score=lambda run: -math.inf if run.steps_to_target is None else -run.steps_to_target)
    return [replace(trial.result, trial=trial.index, lr_rule="tuned" if trial.index == tuning.best_index else "trial")
            for trial in tuning.trials]


def best_steps(runs: Sequence[BatchRun], optimizer: str, batch_sizes: Sequence[int]) -> dict[int, int | None]:
    """Per batch size measured, the fewest steps to the target of ``optimizer``'s trials (None: missed)."""
    steps: dict[int, int | None] = {}
    for batch in batch_sizes:
        cell = [run.steps_to_target for run in runs if run.protocol == PROTOCOL and run.optimizer == optimizer
                and run.batch_size == batch]
        if cell:
            reached = [step for step in cell if step is not None]
            steps[batch] = min(reached) if reached else None
    return steps


def critical_batch_size(steps: dict[int, int | None]) -> int | None:
    """The largest batch up to which each step up in batch size kept at least half the perfect speed-up.

    ``steps`` maps batch size to steps to the target (None: never reached). From the smallest batch
    up, a step from batch b to B "scales" when the steps fell at least (B / b) / 2 times; the answer
    is the last batch reached by scaling steps only (the smallest batch if the first step fails, None
    if the smallest batch never reached the target).
    """
    batches = sorted(steps)
    if not batches or steps[batches[0]] is None:
        return None
    critical = batches[0]
    for small, large in zip(batches, batches[1:]):
        if steps[large] is None or steps[small] / steps[large] < (large / small) / 2:
            break
        critical = large
    return critical
