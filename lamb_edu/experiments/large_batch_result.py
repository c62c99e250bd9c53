"""The large-batch study's result: the run table of both protocols and the numbers read from it.

``LargeBatchResult.runs`` holds every run (``batch_run.BatchRun``), each saying its ``protocol``
("lr_grid" or "quasi_random") and ``lr_rule``: "grid" or "trial" (a point tried on seed 0),
"tuned" (the point chosen on the validation split, on seed 0, and the same setting again from each
report seed), "scaled" (the lr grid's rule-scaled lr, seed 0 only). The *reported* accuracy of a
tuned setting is the mean over the report seeds, which leave out seed 0, the seed it was chosen on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from lamb_edu import backend
from lamb_edu.experiments.batch_run import RUN_FIELDS, BatchRun
from lamb_edu.experiments.critical_batch import best_steps, critical_batch_size
from lamb_edu.experiments.large_batch_settings import LargeBatchSettings
from lamb_edu.experiments.study_optimizers import STUDY_OPTIMIZERS, StudyOptimizer
from lamb_edu.experiments.tuning import SearchSpace

np = backend.np  # the run table is host numbers

__all__ = ["LargeBatchResult", "SELECTION_SEED", "PROTOCOLS"]

SELECTION_SEED = 0
PROTOCOLS = ("lr_grid", "quasi_random", "steps_to_target")


@dataclass
class LargeBatchResult:
    """The run table of the study (``runs``), the settings it ran with, its wall-clock seconds, and how many
    worker processes trained it (0: one after another in the study's process)."""

    runs: list[BatchRun]
    settings: LargeBatchSettings
    quick: bool
    seconds: float
    workers: int = 0

    @property
    def optimizers(self) -> tuple[StudyOptimizer, ...]:
        """The optimizers studied, in order."""
        return self.settings.optimizers

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The global batch sizes, smallest first."""
        return self.settings.batch_sizes

    def select(self, optimizer: str | None = None, lr_rule: str | Sequence[str] | None = None,
               seed: int | None = None, batch_size: int | None = None, protocol: str | None = "lr_grid",
               report: bool = False) -> list[BatchRun]:
        """The runs that match every argument given (``lr_rule`` may be a tuple; ``protocol`` None: both).

        ``report=True`` leaves out the selection seed's runs of a tuned setting.
        """
        rules = (lr_rule,) if isinstance(lr_rule, str) else lr_rule
        return [run for run in self.runs
                if (optimizer is None or run.optimizer == optimizer) and (rules is None or run.lr_rule in rules)
                and (seed is None or run.seed == seed) and (batch_size is None or run.batch_size == batch_size)
                and (protocol is None or run.protocol == protocol)
                and not (report and run.lr_rule == "tuned" and run.seed == SELECTION_SEED)]

    def table(self) -> list[dict[str, Any]]:
        """The run table as plain rows (the columns of ``batch_run.RUN_FIELDS``)."""
        return [run.row() for run in self.runs]

    def accuracy(self, optimizer: str, lr_rule: str, key: str = "final_test_accuracy", protocol: str = "lr_grid",
                 report: bool = True) -> dict[int, list[float]]:
        """Per batch size, ``key`` of each run ``lr_rule`` chose ("tuned" or "scaled"), the report seeds only.

        Tables written before the report seeds existed hold only seed 0 for some cells: there
        (``report`` finds nothing) seed 0 is what there is. Batch sizes the protocol did not cover are empty.
        """
        values = {}
        for batch in self.batch_sizes:
            runs = self.select(optimizer, lr_rule, batch_size=batch, protocol=protocol, report=report) or \
                self.select(optimizer, lr_rule, batch_size=batch, protocol=protocol)
            values[batch] = [getattr(run, key) for run in runs]
        return values

    def steps_to_target(self, optimizer: str, lr_rule: str = "tuned",
                        protocol: str = "lr_grid") -> dict[int, float | None]:
        """Per batch size with runs, the median over the report seeds of the steps to the target (None: missed).

        A seed that never reached the target counts as more steps than any, so one lucky seed out of
        the report's does not make a batch size look reachable.
        """
        medians = {}
        for batch, steps in self.accuracy(optimizer, lr_rule, "steps_to_target", protocol).items():
            if steps:
                ordered = sorted(steps, key=lambda step: math.inf if step is None else step)
                middle = ordered[(len(ordered) - 1) // 2: len(ordered) // 2 + 1]
                medians[batch] = None if None in middle else float(np.mean(middle))
        return medians

    def chosen(self, optimizer: str, protocol: str = "lr_grid", lr_rule: str = "tuned") -> dict[int, BatchRun]:
        """Per batch size, the seed-0 run of the setting ``lr_rule`` chose (its lr, settings and trial index)."""
        return {run.batch_size: run for run in self.select(optimizer, lr_rule, SELECTION_SEED, protocol=protocol)}

    def lr_of(self, optimizer: str, lr_rule: str, protocol: str = "lr_grid") -> dict[int, float]:
        """Per batch size, the learning rate ``lr_rule`` chose (seed 0)."""
        return {batch: run.lr for batch, run in self.chosen(optimizer, protocol, lr_rule).items()}

    def good_lrs(self, optimizer: str, within: float = 0.01) -> dict[int, int]:
        """Per batch size, how many grid lrs reach within ``within`` (a fraction) of the best test accuracy."""
        counts = {}
        for batch in self.batch_sizes:
            grid = [run.final_test_accuracy for run in self.select(optimizer, ("grid", "tuned"), 0, batch)]
            counts[batch] = sum(accuracy >= max(grid) - within for accuracy in grid) if grid else 0
        return counts

    def behind_best(self, protocol: str = "lr_grid") -> dict[int, dict[str, float]]:
        """Per batch size, how many points (fractions) each optimizer's reported mean is behind the best one's."""
        gaps = {}
        for batch in self.batch_sizes:
            means = {o.name: float(np.mean(values[batch])) for o in self.optimizers
                     if (values := self.accuracy(o.name, "tuned", protocol=protocol))[batch]}
            if means:
                gaps[batch] = {name: max(means.values()) - mean for name, mean in means.items()}
        return gaps

    def gap_closed(self, optimizer: str) -> dict[int, float]:
        """Per batch size both protocols cover: quasi-random report mean minus the lr grid's (a fraction)."""
        grid, tuned = self.accuracy(optimizer, "tuned"), self.accuracy(optimizer, "tuned", protocol="quasi_random")
        return {batch: float(np.mean(tuned[batch]) - np.mean(grid[batch])) for batch in self.batch_sizes
                if grid[batch] and tuned[batch]}

    def best_steps(self, optimizer: str) -> dict[int, int | None]:
        """Per batch size, the fewest steps to the target of the steps-to-target measure (None: missed)."""
        return best_steps(self.runs, optimizer, self.batch_sizes)

    def critical_batch(self, optimizer: str) -> int | None:
        """The critical batch size of ``optimizer`` at ``settings.target`` (``critical_batch.critical_batch_size``)."""
        return critical_batch_size(self.best_steps(optimizer))

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: the settings, every run (``runs``) and a digest per optimizer."""
        return _summary(self)

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> "LargeBatchResult":
        """The result back from its ``summary()`` (the ``large_batch`` entry of ``results.json``), without training.

        Everything the figures and the verdict read comes back; what the summary does not keep (each
        run's accuracy curve, the size of the curve slice) takes its default. Summaries written before
        the quasi-random protocol (no ``protocol`` column, ``diverged`` or ``nonfinite_step``) read as
        lr-grid runs.
        """
        return _from_summary(cls, summary)


def _digest(result: LargeBatchResult, o: StudyOptimizer) -> dict[str, Any]:
    """One optimizer's numbers in the summary: both protocols' choices and reported accuracies per batch size."""
    quasi = {batch: {"trial": run.trial, "lr": run.lr, "settings": run.settings,
                     "validation_accuracy": run.validation_accuracy}
             for batch, run in result.chosen(o.name, "quasi_random").items()}
    return {"label": o.label, "rule": o.rule, "grid": list(o.grid), "options": dict(o.options),
            "space": o.space.describe() if o.space is not None else None,
            "tuned_lr": result.lr_of(o.name, "tuned"), "scaled_lr": result.lr_of(o.name, "scaled"),
            "tuned_final_test_accuracy": result.accuracy(o.name, "tuned"),
            "scaled_final_test_accuracy": result.accuracy(o.name, "scaled"),
            "lrs_within_1_point": result.good_lrs(o.name),
            "quasi_random_best": quasi,
            "quasi_random_final_test_accuracy": result.accuracy(o.name, "tuned", protocol="quasi_random"),
            "gap_closed": result.gap_closed(o.name), "best_steps_to_target": result.best_steps(o.name),
            "critical_batch_size": result.critical_batch(o.name)}


def _summary(result: LargeBatchResult) -> dict[str, Any]:
    s = result.settings
    return {"network": "MLP " + "-".join(map(str, (784, *s.hidden, 10))), "batch_sizes": list(s.batch_sizes),
            "epochs": s.epochs, "train_examples": s.train_size, "validation_examples": s.validation_size,
            "test_examples": s.test_size or 10000, "target": s.target, "warmup_fraction": s.warmup_fraction,
            "repeat_seeds": list(s.repeat_seeds), "selection_seed": SELECTION_SEED, "trials": s.trials,
            "tuning_batch_sizes": list(s.tuned_batch_sizes) if s.trials else [], "draw_seed": s.draw_seed,
            "warmup_floor_epochs": s.warmup_floor_epochs, "steps_trials": s.steps_trials,
            "steps_per_doubling": s.steps_per_doubling,
            "steps_batch_sizes": list(s.measured_batch_sizes) if s.steps_trials else [], "quick": result.quick,
            "seconds": result.seconds, "workers": result.workers,
            "fields": list(RUN_FIELDS), "optimizers": {o.name: _digest(result, o) for o in result.optimizers},
            "tuned_behind_best": result.behind_best(), "quasi_random_behind_best": result.behind_best("quasi_random"),
            "runs": result.table(), **({"extra": s.extra} if s.extra else {})}


def _from_summary(cls: type, summary: dict[str, Any]) -> LargeBatchResult:
    known = {o.name: o for o in STUDY_OPTIMIZERS}
    # the study's order, as trained (results.json sorts its keys); an optimizer with no run goes last
    order = list(dict.fromkeys([row["optimizer"] for row in summary["runs"]] + list(summary["optimizers"])))
    optimizers = tuple(
        StudyOptimizer(name, entry["label"], known[name].class_name if name in known else entry["label"],
                       entry["rule"], tuple(entry["grid"]), dict(entry.get("options", {})),
                       SearchSpace.from_description(entry["space"]) if entry.get("space") else None)
        for name, entry in sorted(summary["optimizers"].items(), key=lambda item: order.index(item[0])))
    hidden = tuple(int(width) for width in summary["network"].split()[-1].split("-")[1:-1])
    settings = LargeBatchSettings(
        batch_sizes=tuple(summary["batch_sizes"]), epochs=summary["epochs"], train_size=summary["train_examples"],
        validation_size=summary["validation_examples"], test_size=summary["test_examples"],
        target=summary["target"], optimizers=optimizers, warmup_fraction=summary["warmup_fraction"],
        repeat_seeds=tuple(summary["repeat_seeds"]), hidden=hidden, trials=summary.get("trials", 0),
        tuning_batch_sizes=tuple(summary.get("tuning_batch_sizes") or ()) or None,
        draw_seed=summary.get("draw_seed", 0), warmup_floor_epochs=summary.get("warmup_floor_epochs", 0.25),
        steps_trials=summary.get("steps_trials", 0), steps_per_doubling=summary.get("steps_per_doubling", 16),
        steps_batch_sizes=tuple(summary.get("steps_batch_sizes") or ()) or None,
        extra=dict(summary.get("extra", {})))
    runs = [BatchRun.from_row(row) for row in summary["runs"]]
    return cls(runs, settings, bool(summary["quick"]), float(summary["seconds"]), int(summary.get("workers", 0)))
