"""``Position``: where a run is in its data, the part of a checkpoint that says where to resume.

Each epoch's shuffle depends only on ``(seed, epoch)``, so ``(epoch, batch)`` plus the running sums
of the epoch's loss are all a resumed run needs to continue exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from lamb_edu.train.files import require

__all__ = ["Position"]

# The settings a run must keep to be resumed bit-identically.
RUN_SETTINGS = ("seed", "batch_size", "train_size", "accumulate")


@dataclasses.dataclass
class Position:
    """Epoch and batch to do next, steps done, this epoch's loss sum so far, and the run's data settings."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_examples: int = 0
    epoch_seconds: float = 0.0
    seed: int = 0
    batch_size: int = 1
    train_size: int = 1
    accumulate: int = 1

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps (global batches) in one epoch; the last batch may be smaller."""
        return math.ceil(self.train_size / self.batch_size)

    def advance(self, examples: int, loss: float) -> None:
        """Count one step taken on ``examples`` examples with mean loss ``loss``."""
        self.step += 1
        self.batch += 1
        self.epoch_loss_sum += loss * examples
        self.epoch_examples += examples

    def next_epoch(self) -> None:
        """Move to the first batch of the next epoch."""
        self.epoch += 1
        self.batch, self.epoch_loss_sum, self.epoch_examples, self.epoch_seconds = 0, 0.0, 0, 0.0

    def as_dict(self) -> dict[str, Any]:
        """The position as plain JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Any, path: str | os.PathLike) -> Position:
        """Check every field of a saved position (type, range, consistency), then build it.

        Raises RunFileError naming ``path`` and the bad field; nothing is built from a bad position.
        """
        require(isinstance(values, dict), path, "'position' must be an object")
        values = {"accumulate": 1, **values}  # checkpoints written before gradient accumulation
        fields = {field.name: field.type for field in dataclasses.fields(cls)}
        missing = sorted(set(fields) - set(values))
        require(not missing, path, f"'position' lacks {missing}")
        for name, kind in fields.items():
            value = values[name]
            if kind == "int":
                require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, path,
                        f"position.{name} must be an integer >= 0, got {value!r}")
            else:
                require(isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and value >= 0, path,
                        f"position.{name} must be a finite number >= 0, got {value!r}")
        position = cls(**{name: values[name] for name in fields})
        position._check_consistent(path)
        return position

    def _check_consistent(self, path: str | os.PathLike) -> None:
        require(self.batch_size >= 1 and self.train_size >= 1 and self.accumulate >= 1, path,
                "position.batch_size, train_size and accumulate must be at least 1")
        require(self.batch < self.steps_per_epoch, path,
                f"position.batch {self.batch} is past the end of an epoch of {self.steps_per_epoch} batches")
        require(self.step == self.epoch * self.steps_per_epoch + self.batch, path,
                f"position.step {self.step} does not match epoch {self.epoch}, batch {self.batch} "
                f"({self.steps_per_epoch} batches an epoch)")
        require(self.epoch_examples == self.batch * self.batch_size, path,
                f"position.epoch_examples {self.epoch_examples} does not match batch {self.batch} of {self.batch_size}")
