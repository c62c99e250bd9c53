"""The large-batch study: what LAMB is for, measured on MNIST (``large_batch``).

LAMB (You et al. 2019) and LARS (You, Gitman & Ginsburg 2017) were made to keep training well when
the global batch grows to thousands of examples, so that the work of one step can be spread over
many workers. Nado et al. (2021, "A Large Batch Optimizer Reality Check") found that Nesterov
momentum and Adam, tuned as carefully, keep up with them. This study asks the same question on a
laptop: SGD with Nesterov momentum, AdamW, LARS and LAMB, at global batch sizes from 128 to 16384,
each for the same number of epochs (so a batch four times larger takes four times fewer steps),
with a linear warm-up over the first 10 % of the steps and a linear decay to zero.

Two ways to pick the learning rate at each batch size:

- **scaled**: the tuned lr of the smallest batch, scaled by the optimizer's rule, linear for SGD and
  LARS (Goyal et al. 2017), square root for AdamW and LAMB (as the LAMB paper does);
- **tuned**: the best of a log-spaced grid (factor 2 between points), chosen by the accuracy on
  5000 held-out training images, never on the test set.

The result's ``runs`` is the run table (``batch_sweep.BatchRun``): what the figures, the notebook
and ``results.json`` read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from lamb_edu import backend, data, nn, optim
from lamb_edu.experiments.batch_sweep import RUN_FIELDS, BatchRun, RunQueue, mark_tuned, study_data
from lamb_edu.optim import schedules

np = backend.np  # the run table is host numbers

__all__ = ["StudyOptimizer", "STUDY_OPTIMIZERS", "LargeBatchSettings", "FULL", "QUICK", "LargeBatchResult",
           "large_batch"]


def _ladder(low: float, count: int) -> tuple[float, ...]:
    """``count`` learning rates from ``low`` upwards, each twice the last."""
    return tuple(low * 2.0**k for k in range(count))


@dataclass(frozen=True)
class StudyOptimizer:
    """One optimizer of the study: its class in ``lamb_edu.optim``, its scaling rule and its lr grid.

    ``name`` is what the run table records (and what ``lamb-edu train --optimizer`` takes); ``rule``
    is "linear" or "sqrt"; ``grid`` are the learning rates tried at every batch size; ``options``
    the other constructor keywords.
    """

    name: str
    label: str
    class_name: str
    rule: str
    grid: tuple[float, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def make(self, parameters: Sequence[Any], lr: float) -> Any:
        """The optimizer over ``parameters`` at learning rate ``lr``."""
        return getattr(optim, self.class_name)(parameters, lr=lr, **self.options)

    def scale(self, lr: float, batch_size: int, base_batch_size: int) -> float:
        """``lr`` tuned at ``base_batch_size``, scaled to ``batch_size`` by this optimizer's rule."""
        rule = schedules.linear_scaling if self.rule == "linear" else schedules.sqrt_scaling
        return rule(lr, batch_size, base_batch_size)


# Weight decay 0.01, decoupled, for AdamW and LAMB as in the LAMB paper; none for SGD and LARS. The
# grids were placed so that each spans the lrs that train at every batch size, with room on both sides.
STUDY_OPTIMIZERS = (
    StudyOptimizer("sgd", "SGD + Nesterov momentum", "SGD", "linear", _ladder(0.0125, 8),
                   {"momentum": 0.9, "nesterov": True}),
    StudyOptimizer("adamw", "AdamW", "AdamW", "sqrt", _ladder(0.0005, 8), {"weight_decay": 0.01}),
    StudyOptimizer("lars", "LARS", "LARS", "linear", _ladder(1.0, 8), {"momentum": 0.9}),
    StudyOptimizer("lamb", "LAMB", "LAMB", "sqrt", _ladder(0.0025, 8), {"weight_decay": 0.01}),
)


@dataclass(frozen=True)
class LargeBatchSettings:
    """What the study trains: batch sizes, epochs, the data splits, the accuracy target, the seeds.

    ``train_size`` is a multiple of every batch size, so every step sees a full batch. The tuned
    and scaled runs are trained again from each of ``repeat_seeds`` (the grid from seed 0 only).
    """

    batch_sizes: tuple[int, ...]
    epochs: int
    train_size: int
    validation_size: int
    test_size: int | None
    target: float
    optimizers: tuple[StudyOptimizer, ...] = STUDY_OPTIMIZERS
    warmup_fraction: float = 0.1
    repeat_seeds: tuple[int, ...] = ()
    repeat_rules: tuple[str, ...] = ("tuned",)
    hidden: tuple[int, ...] = (256, 256)
    curve_size: int = 2000  # validation images scored for the accuracy over time


FULL = LargeBatchSettings(batch_sizes=(128, 512, 2048, 8192, 16384), epochs=10, train_size=49152,
                          validation_size=5000, test_size=None, target=0.95, repeat_seeds=(1, 2))
# Quick: 8192 images, three batch sizes, three lrs of the full grid (a factor 4 apart), a smaller curve slice.
QUICK = LargeBatchSettings(
    batch_sizes=(128, 512, 2048), epochs=6, train_size=8192, validation_size=2000, test_size=2000, target=0.9,
    curve_size=500,
    optimizers=tuple(StudyOptimizer(o.name, o.label, o.class_name, o.rule, o.grid[1:7:2], o.options)
                     for o in STUDY_OPTIMIZERS),
)


@dataclass
class LargeBatchResult:
    """The run table of the study (``runs``), the settings it ran with, and its wall-clock seconds."""

    runs: list[BatchRun]
    settings: LargeBatchSettings
    quick: bool
    seconds: float

    @property
    def optimizers(self) -> tuple[StudyOptimizer, ...]:
        """The optimizers studied, in order."""
        return self.settings.optimizers

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The global batch sizes, smallest first."""
        return self.settings.batch_sizes

    def select(self, optimizer: str | None = None, lr_rule: str | Sequence[str] | None = None,
               seed: int | None = None, batch_size: int | None = None) -> list[BatchRun]:
        """The runs that match every argument given (``lr_rule`` may be a tuple of rules)."""
        rules = (lr_rule,) if isinstance(lr_rule, str) else lr_rule
        return [run for run in self.runs
                if (optimizer is None or run.optimizer == optimizer) and (rules is None or run.lr_rule in rules)
                and (seed is None or run.seed == seed) and (batch_size is None or run.batch_size == batch_size)]

    def table(self) -> list[dict[str, Any]]:
        """The run table as plain rows (the columns of ``batch_sweep.RUN_FIELDS``)."""
        return [run.row() for run in self.runs]

    def accuracy(self, optimizer: str, lr_rule: str, key: str = "final_test_accuracy") -> dict[int, list[float]]:
        """Per batch size, ``key`` of each seed's run chosen by ``lr_rule`` ("tuned" or "scaled")."""
        return {batch: [getattr(run, key) for run in self.select(optimizer, lr_rule, batch_size=batch)]
                for batch in self.batch_sizes}

    def steps_to_target(self, optimizer: str, lr_rule: str = "tuned") -> dict[int, float | None]:
        """Per batch size with runs, the median over the seeds of the steps to the target (None: missed).

        A seed that never reached the target counts as more steps than any, so one lucky seed out of
        three does not make a batch size look reachable.
        """
        medians = {}
        for batch, steps in self.accuracy(optimizer, lr_rule, key="steps_to_target").items():
            if steps:
                ordered = sorted(steps, key=lambda step: math.inf if step is None else step)
                middle = ordered[(len(ordered) - 1) // 2: len(ordered) // 2 + 1]
                medians[batch] = None if None in middle else float(np.mean(middle))
        return medians

    def lr_of(self, optimizer: str, lr_rule: str) -> dict[int, float]:
        """Per batch size, the learning rate ``lr_rule`` chose (seed 0)."""
        return {run.batch_size: run.lr for run in self.select(optimizer, lr_rule, seed=0)}

    def good_lrs(self, optimizer: str, within: float = 0.01) -> dict[int, int]:
        """Per batch size, how many grid lrs reach within ``within`` (a fraction) of the best test accuracy."""
        counts = {}
        for batch in self.batch_sizes:
            grid = [run.final_test_accuracy for run in self.select(optimizer, ("grid", "tuned"), 0, batch)]
            counts[batch] = sum(accuracy >= max(grid) - within for accuracy in grid) if grid else 0
        return counts

    def behind_best(self, lr_rule: str = "tuned") -> dict[int, dict[str, float]]:
        """Per batch size, how many points (fractions) each optimizer's mean accuracy is behind the best one's."""
        gaps = {}
        for batch in self.batch_sizes:
            means = {o.name: float(np.mean(self.accuracy(o.name, lr_rule)[batch])) for o in self.optimizers
                     if self.accuracy(o.name, lr_rule)[batch]}
            gaps[batch] = {name: max(means.values()) - mean for name, mean in means.items()}
        return gaps

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: the settings, every run (``runs``) and a digest per optimizer."""
        s = self.settings
        digest = {
            o.name: {"label": o.label, "rule": o.rule, "grid": list(o.grid), "options": dict(o.options),
                     "tuned_lr": self.lr_of(o.name, "tuned"), "scaled_lr": self.lr_of(o.name, "scaled"),
                     "tuned_final_test_accuracy": self.accuracy(o.name, "tuned"),
                     "scaled_final_test_accuracy": self.accuracy(o.name, "scaled"),
                     "lrs_within_1_point": self.good_lrs(o.name)}
            for o in self.optimizers
        }
        return {"network": "MLP " + "-".join(map(str, (784, *s.hidden, 10))), "batch_sizes": list(s.batch_sizes),
                "epochs": s.epochs, "train_examples": s.train_size, "validation_examples": s.validation_size,
                "test_examples": s.test_size or 10000, "target": s.target, "warmup_fraction": s.warmup_fraction,
                "repeat_seeds": list(s.repeat_seeds), "quick": self.quick, "seconds": self.seconds,
                "fields": list(RUN_FIELDS), "optimizers": digest, "tuned_behind_best": self.behind_best(),
                "runs": self.table()}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> "LargeBatchResult":
        """The result back from its ``summary()`` (the ``large_batch`` entry of ``results.json``), without training.

        Everything the figures and the verdict read comes back; what the summary does not keep (each
        run's accuracy curve, the size of the curve slice) takes its default. So
        ``plots.experiment_figures("large_batch", LargeBatchResult.from_summary(entry))`` redraws a
        study's figures in seconds.
        """
        known = {o.name: o for o in STUDY_OPTIMIZERS}
        # the study's order, as trained (results.json sorts its keys); an optimizer with no run goes last
        order = list(dict.fromkeys([row["optimizer"] for row in summary["runs"]] + list(summary["optimizers"])))
        optimizers = tuple(
            StudyOptimizer(name, entry["label"], known[name].class_name if name in known else entry["label"],
                           entry["rule"], tuple(entry["grid"]), dict(entry.get("options", {})))
            for name, entry in sorted(summary["optimizers"].items(), key=lambda item: order.index(item[0])))
        hidden = tuple(int(width) for width in summary["network"].split()[-1].split("-")[1:-1])
        settings = LargeBatchSettings(
            batch_sizes=tuple(summary["batch_sizes"]), epochs=summary["epochs"], train_size=summary["train_examples"],
            validation_size=summary["validation_examples"], test_size=summary["test_examples"],
            target=summary["target"], optimizers=optimizers, warmup_fraction=summary["warmup_fraction"],
            repeat_seeds=tuple(summary["repeat_seeds"]), hidden=hidden)
        runs = [BatchRun(**{key: row[key] for key in RUN_FIELDS}) for row in summary["runs"]]
        return cls(runs, settings, bool(summary["quick"]), float(summary["seconds"]))


def large_batch(quick: bool = False, data_dir: Any = None, progress: bool = False,
                settings: LargeBatchSettings | None = None) -> LargeBatchResult:
    """Run the large-batch study (``FULL``, or ``QUICK`` with ``quick``; ``settings`` overrides both).

    Per optimizer: the grid at every batch size from seed 0 (the best by validation accuracy is
    "tuned"), then the rule-scaled lr from the smallest batch's tuned lr ("scaled": a grid run when
    it falls on the grid), then the ``repeat_rules`` runs again from each of ``repeat_seeds``.
    """
    settings = settings or (QUICK if quick else FULL)
    started = time.perf_counter()
    split = study_data(data.load_mnist(data_dir), settings.train_size, settings.validation_size, settings.test_size,
                       settings.curve_size)
    hidden = list(settings.hidden)
    queue = RunQueue(lambda seed: nn.MLP([784, *hidden, 10], seed=seed), split, epochs=settings.epochs,
                     warmup_fraction=settings.warmup_fraction, target=settings.target, progress=progress,
                     description="large_batch")
    # the grid and the repeats are known ahead; a scaled lr off the grid adds a run when it starts
    queue.expect(sum(len(settings.batch_sizes) * (len(o.grid) + len(settings.repeat_seeds) * len(settings.repeat_rules))
                     for o in settings.optimizers))
    runs: list[BatchRun] = []
    try:
        for study_optimizer in settings.optimizers:
            runs += _study_one(queue, study_optimizer, settings)
    finally:
        queue.close()
    return LargeBatchResult(runs, settings, bool(quick), time.perf_counter() - started)


def _study_one(queue: RunQueue, study_optimizer: StudyOptimizer, settings: LargeBatchSettings) -> list[BatchRun]:
    """The grid, the scaled runs and the repeats of one optimizer, in that order."""
    name, make = study_optimizer.name, study_optimizer.make
    runs = mark_tuned([queue.run(name, make, batch, lr) for batch in settings.batch_sizes for lr in study_optimizer.grid])
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
