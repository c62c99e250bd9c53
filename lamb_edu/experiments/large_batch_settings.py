"""What the large-batch study trains: ``LargeBatchSettings``, and its two sizes, ``FULL`` and ``QUICK``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lamb_edu.experiments.study_optimizers import STUDY_OPTIMIZERS, StudyOptimizer

__all__ = ["LargeBatchSettings", "FULL", "QUICK"]


@dataclass(frozen=True)
class LargeBatchSettings:
    """What the study trains: batch sizes, epochs, the data splits, the accuracy target, the seeds, the trials.

    ``train_size`` is a multiple of every batch size, so every step sees a full batch. Selection
    runs from seed 0; the chosen settings are trained again from each of ``repeat_seeds`` (the
    report). ``trials`` quasi-random settings are tried per optimizer at each of
    ``tuning_batch_sizes`` (all batch sizes when None; 0 trials: no quasi-random protocol), drawn
    from ``draw_seed``; their warm-up lasts at least ``warmup_floor_epochs`` epochs. ``steps_trials``
    trials per optimizer and batch size measure the steps to ``target`` the way Shallue et al. do
    (``critical_batch``; 0: not measured) at ``steps_batch_sizes`` (all when None), scored
    ``steps_per_doubling`` times per doubling of the steps.
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
    trials: int = 0
    tuning_batch_sizes: tuple[int, ...] | None = None
    draw_seed: int = 0
    warmup_floor_epochs: float = 0.25
    steps_trials: int = 0
    steps_per_doubling: int = 16
    steps_batch_sizes: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def tuned_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes the quasi-random protocol covers."""
        return self.batch_sizes if self.tuning_batch_sizes is None else self.tuning_batch_sizes

    @property
    def measured_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes the steps-to-target measure covers."""
        return self.batch_sizes if self.steps_batch_sizes is None else self.steps_batch_sizes


# Full: the lr grid as before (8 lrs a factor 2 apart, 160 runs), and 8 quasi-random trials per optimizer and
# batch size (the same budget as the grid's 8 points), each tuned setting re-run on seeds 1 and 2; the steps-to-
# target measure, 4 trials per cell, up to batch 8192 (at 16 384 the epoch budget is 30 steps, and no tuned run of
# the lr grid reached 95 % in them). About 400 runs: ~32 minutes on a 2-core machine with two workers.
FULL = LargeBatchSettings(batch_sizes=(128, 512, 2048, 8192, 16384), epochs=10, train_size=49152,
                          validation_size=5000, test_size=None, target=0.95, repeat_seeds=(1, 2), trials=8,
                          steps_trials=4, steps_batch_sizes=(128, 512, 2048, 8192))
# Quick: 8192 images, three batch sizes, three lrs of the full grid (a factor 4 apart), a smaller curve
# slice, and 3 quasi-random trials at the largest batch: enough to show both protocols in CI.
QUICK = LargeBatchSettings(
    batch_sizes=(128, 512, 2048), epochs=6, train_size=8192, validation_size=2000, test_size=2000, target=0.9,
    curve_size=500, trials=3, tuning_batch_sizes=(2048,), steps_trials=2,
    optimizers=tuple(replace(o, grid=o.grid[1:7:2]) for o in STUDY_OPTIMIZERS),
)
