"""``History``: what ``fit`` measured, as host NumPy arrays that grow while training runs.

Per step: ``step_loss``. Every ``log_every`` steps (and at step 1): ``log_steps``, ``log_lr`` and,
per parameter (columns in the order of ``parameter_names``), ``weight_norm`` ‖w‖ before the step and,
for optimizers that record them (LAMB, LARS), ``ratio_denominator`` and ``trust_ratio``. Per epoch: one
record dict in ``epochs``. ``nonfinite_step`` is None, or the step at which a loss, gradient or weight
stopped being finite (``diverged`` is its old name, still read and written). ``to_dict``/``from_dict``
round-trip through strict JSON; ``from_dict`` checks what it reads (lengths, widths, epoch records).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from lamb_edu import backend
from lamb_edu.optim.functional import RENAMED_TRUST_KEYS, TRUST_KEYS

np = backend.np  # host NumPy: the history is bookkeeping, not device maths

__all__ = ["History", "json_safe", "TRUST_KEYS"]

_SERIES = ("step_loss", "log_steps", "log_lr", *TRUST_KEYS)


class _Rows:
    """An array that rows are appended to, in a buffer that doubles when full (amortised O(1) per row)."""

    def __init__(self, width: int | None, dtype: Any, rows: Any = None) -> None:
        shape = (0,) if width is None else (0, width)
        initial = (np.zeros(shape, dtype=dtype) if rows is None
                   else np.asarray(rows, dtype=dtype).reshape((-1, *shape[1:])))
        self._buffer = initial.copy()
        self._count = len(initial)

    def append(self, row: Any) -> None:
        if self._count == len(self._buffer):
            grown = np.empty((max(16, 2 * self._count), *self._buffer.shape[1:]), dtype=self._buffer.dtype)
            grown[: self._count] = self._buffer[: self._count]
            self._buffer = grown
        self._buffer[self._count] = row
        self._count += 1

    def view(self) -> Any:
        view = self._buffer[: self._count]
        view.flags.writeable = False  # append through History, never write into the record
        return view


class History:
    """Everything ``fit`` measured (see the module docstring); the arrays are read-only views."""

    def __init__(self, parameter_names: Sequence[str] = (), *, epochs: Iterable[dict[str, Any]] = (),
                 nonfinite_step: int | None = None, seconds: float = 0.0, diverged: int | None = None,
                 **series: Any) -> None:
        unknown = set(series) - set(_SERIES)
        if unknown:
            raise TypeError(f"History got unknown fields {sorted(unknown)}")
        self.parameter_names = list(parameter_names)
        width = len(self.parameter_names)
        self._rows = {
            "step_loss": _Rows(None, np.float64, series.get("step_loss")),
            "log_steps": _Rows(None, np.int64, series.get("log_steps")),
            "log_lr": _Rows(None, np.float64, series.get("log_lr")),
            **{key: _Rows(width, np.float64, series.get(key)) for key in TRUST_KEYS},
        }
        self.epochs = [dict(record) for record in epochs]
        step = nonfinite_step if nonfinite_step is not None else diverged
        self.nonfinite_step = None if step is None or step is False else int(step)  # False: files from before 0.2
        self.seconds = float(seconds)

    @property
    def diverged(self) -> int | None:
        """The old name of ``nonfinite_step`` (experiments written before it still read it)."""
        return self.nonfinite_step

    @diverged.setter
    def diverged(self, step: int | None) -> None:
        self.nonfinite_step = step

    step_loss = property(lambda self: self._rows["step_loss"].view(), doc="Loss of every step taken, (steps,).")
    log_steps = property(lambda self: self._rows["log_steps"].view(), doc="Steps with a logged row, (logs,).")
    log_lr = property(lambda self: self._rows["log_lr"].view(), doc="The lr each logged step used, (logs,).")
    weight_norm = property(lambda self: self._rows["weight_norm"].view(), doc="‖w‖ before each logged step, "
                                                                              "(logs, params).")
    ratio_denominator = property(lambda self: self._rows["ratio_denominator"].view(),
                                 doc="What the trust ratio divided by (LAMB: ‖u‖), (logs, params).")
    trust_ratio = property(lambda self: self._rows["trust_ratio"].view(), doc="The trust ratio it recorded, "
                                                                              "(logs, params).")

    def append_step(self, loss: float) -> None:
        """Record the loss of one more step."""
        self._rows["step_loss"].append(loss)

    def append_log(self, step: int, lr: float, weight_norm: Sequence[float],
                   recorded: dict[str, Sequence[float]] | None) -> None:
        """Record one logged row: the step, its lr, ‖w‖ per parameter and the optimizer's own statistics."""
        self._rows["log_steps"].append(step)
        self._rows["log_lr"].append(lr)
        self._rows["weight_norm"].append(weight_norm)
        if recorded is not None:
            self._rows["ratio_denominator"].append(recorded["ratio_denominator"])
            self._rows["trust_ratio"].append(recorded["trust_ratio"])

    @property
    def steps(self) -> int:
        """Optimizer steps taken."""
        return len(self.step_loss)

    @property
    def records_trust(self) -> bool:
        """True when the optimizer recorded update norms and trust ratios."""
        return len(self.trust_ratio) > 0

    def epoch_values(self, key: str) -> Any:
        """One column of the epoch records as a float64 array, e.g. ``epoch_values("test_accuracy")``."""
        values = [math.nan if record.get(key) is None else record[key] for record in self.epochs]
        return np.array(values, dtype=np.float64)

    def final(self) -> dict[str, Any]:
        """The last epoch's ``train_loss``, ``test_loss`` and ``test_accuracy`` (None before any epoch).

        A masked-LM run also gives its ``bits_per_char``.
        """
        last = self.epochs[-1] if self.epochs else {}
        extra = ("bits_per_char",) if "bits_per_char" in last else ()
        return {key: last.get(key) for key in ("train_loss", "test_loss", "test_accuracy", *extra)}

    def trust_arrays(self) -> dict[str, Any]:
        """Host arrays for ``trust.npz``: ``steps``, ``lr``, ``names`` and ``<name>/<statistic>`` per parameter."""
        arrays: dict[str, Any] = {"steps": self.log_steps, "lr": self.log_lr,
                                  "names": np.asarray(self.parameter_names, dtype=str)}
        for key in TRUST_KEYS:
            table = getattr(self, key)
            if len(table):
                arrays.update({f"{name}/{key}": table[:, column] for column, name in enumerate(self.parameter_names)})
        return arrays

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of lists; non-finite floats become None so the result is strict JSON."""
        return json_safe({"parameter_names": self.parameter_names,
                          **{key: getattr(self, key).tolist() for key in _SERIES},
                          "epochs": self.epochs, "nonfinite_step": self.nonfinite_step, "seconds": self.seconds})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """The inverse of ``to_dict`` (None losses and norms come back as NaN); files with ``diverged`` or
        ``update_norm`` (``ratio_denominator``'s old name) still read.

        Raises ValueError naming the problem when the values do not make one history: a series that is
        not a list of numbers, logged series of unequal lengths or widths, an epoch record without its
        ``epoch`` or out of order.
        """
        if isinstance(values, dict):  # files from before the rename say update_norm
            values = {RENAMED_TRUST_KEYS.get(key, key): value for key, value in values.items()}
        _check_history_values(values)
        series = {key: _nan_for_none(values[key]) for key in _SERIES if key in values}
        step = values.get("nonfinite_step", values.get("diverged"))
        return cls(values.get("parameter_names", ()), epochs=values.get("epochs", ()), nonfinite_step=step,
                   seconds=values.get("seconds", 0.0), **series)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        same_series = all(np.array_equal(getattr(self, key), getattr(other, key), equal_nan=True) for key in _SERIES)
        return same_series and (self.parameter_names, self.epochs, self.nonfinite_step, self.seconds) == (
            other.parameter_names, other.epochs, other.nonfinite_step, other.seconds)

    def __repr__(self) -> str:
        return (f"History(steps={self.steps}, epochs={len(self.epochs)}, logs={len(self.log_steps)}, "
                f"nonfinite_step={self.nonfinite_step})")


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _is_count(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_history_values(values: Any) -> None:
    """ValueError unless ``values`` (a ``to_dict``) holds one consistent history; see ``from_dict``."""
    if not isinstance(values, dict):
        raise ValueError("a history must be an object")
    names = values.get("parameter_names", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("parameter_names must be a list of names")
    for key in ("step_loss", "log_steps", "log_lr"):
        column = values.get(key, [])
        if not isinstance(column, list) or not all(_is_number(value) for value in column):
            raise ValueError(f"{key} must be a list of numbers")
    if not all(_is_count(step, 1) for step in values.get("log_steps", [])):
        raise ValueError("log_steps must be step numbers >= 1")
    logs = len(values.get("log_steps", []))
    if len(values.get("log_lr", [])) != logs:
        raise ValueError(f"log_lr has {len(values.get('log_lr', []))} rows, log_steps {logs}")
    for key in TRUST_KEYS:
        table = values.get(key, [])
        rows_ok = isinstance(table, list) and all(isinstance(row, list) and len(row) == len(names)
                                                  and all(_is_number(value) for value in row) for row in table)
        if not rows_ok or len(table) not in ((logs,) if key == "weight_norm" else (0, logs)):
            raise ValueError(f"{key} must have one row of {len(names)} numbers per logged step ({logs})")
    _check_epoch_records(values.get("epochs", []))
    step = values.get("nonfinite_step", values.get("diverged"))
    if not (step is None or step is False or _is_count(step, 1)) or not _is_number(values.get("seconds", 0.0)):
        raise ValueError("nonfinite_step must be null or a step >= 1, and seconds a number")


def _check_epoch_records(records: Any) -> None:
    if not isinstance(records, list):
        raise ValueError("epochs must be a list of records")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or record.get("epoch") != number or not _is_count(record.get("steps"), 0):
            raise ValueError(f"epoch record {number} must be an object with 'epoch' {number} and its 'steps'")
        if not all(_is_number(record.get(key)) for key in ("train_loss", "test_loss", "test_accuracy")):
            raise ValueError(f"epoch record {number}: train_loss, test_loss and test_accuracy must be numbers")
        if record["test_accuracy"] is not None and not 0.0 <= record["test_accuracy"] <= 1.0:
            raise ValueError(f"epoch record {number}: test_accuracy {record['test_accuracy']} is not a fraction "
                             "in [0, 1]")
        if number > 1 and record["steps"] < records[number - 2]["steps"]:
            raise ValueError(f"epoch record {number}: steps {record['steps']} is before the previous epoch's")


def _nan_for_none(values: Any) -> Any:
    if isinstance(values, list):
        return [_nan_for_none(value) for value in values]
    return math.nan if values is None else values


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±inf replaced by None, recursively (JSON has no NaN); NumPy scalars become Python's."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
