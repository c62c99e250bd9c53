"""One run of a batch-size study as a record: ``BatchRun`` and the columns of the run table, ``RUN_FIELDS``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RUN_FIELDS", "BatchRun", "Pending", "PendingRun"]

# The columns of the run table, in order (the CSV of `lamb-edu sweep`, the rows of results.json).
RUN_FIELDS = ("optimizer", "batch_size", "lr", "lr_rule", "seed", "epochs", "steps", "warmup_steps",
              "final_test_accuracy", "best_test_accuracy", "validation_accuracy", "target", "steps_to_target",
              "seconds", "diverged", "status", "protocol", "trial", "settings")


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
    ``status`` is its verdict ("learned", "diverged", "did not learn"). ``protocol`` says which tuning
    protocol ran it ("lr_grid", "quasi_random" or "steps_to_target"), ``trial`` its trial index there
    (None for a re-run or a grid run) and ``settings`` the knobs it set besides the lr (β1 or momentum,
    warm-up share, weight decay, ε; empty for the lr grid, whose optimizers keep their defaults).
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
    protocol: str = "lr_grid"
    trial: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The run as one row of the run table (plain JSON values, no curve)."""
        values = asdict(self)
        return {key: values[key] for key in RUN_FIELDS}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "BatchRun":
        """A run back from ``row()``, also from tables written before the protocol columns existed.

        An old row is an lr-grid run; an accuracy written as null (strict JSON has no NaN) reads as NaN;
        a row that says ``nonfinite_step`` instead of ``diverged`` (the newer run-folder vocabulary)
        counts as diverged when that step is set or its status says so.
        """
        values = {key: row[key] for key in RUN_FIELDS[:14] + ("status",)}
        for key in ("final_test_accuracy", "best_test_accuracy", "validation_accuracy", "seconds"):
            values[key] = math.nan if values[key] is None else values[key]  # strict JSON wrote NaN as null
        if "diverged" in row:
            values["diverged"] = bool(row["diverged"])
        else:
            values["diverged"] = row.get("nonfinite_step") is not None or row["status"] == "diverged"
        values.update(protocol=row.get("protocol", "lr_grid"), trial=row.get("trial"),
                      settings=dict(row.get("settings") or {}))
        return cls(**values)


class Pending(Exception):
    """A dry pass read a run that has not been trained yet: the cell can go no further this pass."""


class PendingRun:
    """What a ``RunQueue`` in dry mode returns for a run not yet trained: reading anything from it raises
    ``Pending`` (see ``experiments.run_pool``)."""

    def __getattr__(self, name: str) -> Any:
        raise Pending(name)

    @property
    def __dataclass_fields__(self) -> Any:  # dataclasses.replace finds this on the class, then reads it here
        raise Pending("__dataclass_fields__")
