"""Learning-rate schedules and the batch-size scaling rules.

A schedule is a function of the step s (the number of optimizer steps already taken, from 0) that
returns a factor; ``LRScheduler`` multiplies each group's starting lr by it::

    schedule = schedules.WarmupPolynomialDecay(warmup_steps=100, total_steps=1000)
    scheduler = schedules.LRScheduler(optimizer, schedule)   # sets lr for the first step now
    for batch in batches:
        ...; optimizer.step(); scheduler.step()             # then lr for the next step

- ``Constant``: 1.
- ``LinearWarmup(w)``: (s + 1)/w for the first w steps, then 1 (Goyal et al. 2017): big learning
  rates diverge at the start, when the weights are random and the gradients large.
- ``WarmupPolynomialDecay(w, T, power, end_factor)``: warm-up, then
  end + (1 − end)·(1 − (s − w)/(T − w))^power down to ``end_factor`` at step T (the LAMB paper's).
- ``WarmupCosine(w, T, end_factor)``: warm-up, then end + (1 − end)·½(1 + cos(π·(s − w)/(T − w))).

``linear_scaling(lr, B, B0)`` = lr·B/B0 (Goyal et al. 2017, for SGD) and ``sqrt_scaling(lr, B, B0)`` =
lr·√(B/B0) (Krizhevsky 2014; the rule the LAMB paper uses): the lr for batch size B given a good lr
for B0.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

__all__ = [
    "Schedule", "Constant", "LinearWarmup", "WarmupPolynomialDecay", "WarmupCosine", "LRScheduler",
    "linear_scaling", "sqrt_scaling",
]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"invalid {name}: {value!r} (must be an integer >= {minimum})")
    return value


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"invalid {name}: {value!r} (must be a finite number > 0)")
    return float(value)


def _check_end_factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"invalid end_factor: {value!r} (must be in [0, 1])")
    return float(value)


class Schedule:
    """A learning-rate factor as a function of the step: ``schedule(step) -> float``."""

    warmup_steps = 0

    def __call__(self, step: int) -> float:
        _check_int("step", step, 0)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.after_warmup(step)

    def after_warmup(self, step: int) -> float:
        """The factor once warm-up is over (1 here; subclasses decay it)."""
        return 1.0


class Constant(Schedule):
    """The factor 1 at every step."""


class LinearWarmup(Schedule):
    """(step + 1)/warmup_steps for the first ``warmup_steps`` steps, then 1."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = _check_int("warmup_steps", warmup_steps, 0)


class _WarmupDecay(Schedule):
    """Warm-up for ``warmup_steps``, then a decay that reaches ``end_factor`` at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int, end_factor: float = 0.0) -> None:
        self.warmup_steps = _check_int("warmup_steps", warmup_steps, 0)
        self.total_steps = _check_int("total_steps", total_steps, self.warmup_steps + 1)
        self.end_factor = _check_end_factor(end_factor)

    def after_warmup(self, step: int) -> float:
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.end_factor + (1.0 - self.end_factor) * self.decay(progress)

    def decay(self, progress: float) -> float:
        raise NotImplementedError


class WarmupPolynomialDecay(_WarmupDecay):
    """Warm-up, then (1 − progress)^power from 1 down to ``end_factor`` (LAMB paper: power 1)."""

    def __init__(self, warmup_steps: int, total_steps: int, power: float = 1.0, end_factor: float = 0.0) -> None:
        super().__init__(warmup_steps, total_steps, end_factor)
        self.power = _check_positive("power", power)

    def decay(self, progress: float) -> float:
        return (1.0 - progress) ** self.power


class WarmupCosine(_WarmupDecay):
    """Warm-up, then half a cosine from 1 down to ``end_factor`` (Loshchilov & Hutter, 2017)."""

    def decay(self, progress: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class LRScheduler:
    """Sets every group's lr to its starting lr times ``schedule(step)``; ``.step()`` after each optimizer step.

    ``optimizer`` is any optimizer here (a ``Lookahead`` too: its groups are the inner ones);
    ``schedule`` is a ``Schedule`` or any function of the step returning a factor.
    """

    def __init__(self, optimizer: Any, schedule: Callable[[int], float]) -> None:
        if not callable(schedule):
            raise TypeError(f"schedule must be a function of the step, got {type(schedule).__name__}")
        self.optimizer = optimizer
        self.schedule = schedule
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self.apply(0)

    def apply(self, step: int) -> None:
        """Set every group's lr for step ``step`` (the number of optimizer steps taken)."""
        factor = self._factor(step)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * factor
        self.last_step = step

    def _factor(self, step: int) -> float:
        factor = float(self.schedule(step))
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"the schedule gave the factor {factor!r} at step {step} (must be finite and >= 0)")
        return factor

    def step(self) -> None:
        """Advance one step and set the learning rates for it."""
        self.apply(self.last_step + 1)

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group now."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The starting lrs and the step count: plain numbers, for JSON."""
        return {"base_lrs": list(self.base_lrs), "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` and set the learning rates for its step; checked first (a bad one changes nothing).

        ValueError if the keys, the number of groups, a learning rate (finite, >= 0) or the step
        (an integer >= 0) is wrong, or the schedule gives no valid factor at that step.
        """
        if not isinstance(state, Mapping) or set(state) != {"base_lrs", "last_step"}:
            raise ValueError(f"scheduler state must have the keys 'base_lrs' and 'last_step', got {state!r:.200}")
        if not isinstance(state["base_lrs"], (list, tuple)):
            raise ValueError(f"scheduler state's base_lrs must be a list, got {state['base_lrs']!r:.200}")
        base_lrs, last_step = list(state["base_lrs"]), state["last_step"]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"state has {len(base_lrs)} learning rates, the optimizer has "
                             f"{len(self.optimizer.param_groups)} groups")
        for lr in base_lrs:
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < math.inf:
                raise ValueError(f"invalid base_lrs: {lr!r} (must be a finite number >= 0)")
        _check_int("last_step", last_step, 0)
        self._factor(last_step)  # raises here, before anything changed, if the schedule has no factor there
        self.base_lrs = [float(lr) for lr in base_lrs]
        self.apply(last_step)


def linear_scaling(lr: float, batch_size: int, base_batch_size: int) -> float:
    """lr·B/B0: the learning rate for batch size B, given ``lr`` tuned for B0 (Goyal et al. 2017)."""
    _check_positive("lr", lr)
    return lr * _check_int("batch_size", batch_size, 1) / _check_int("base_batch_size", base_batch_size, 1)


def sqrt_scaling(lr: float, batch_size: int, base_batch_size: int) -> float:
    """lr·√(B/B0): keeps the variance of the update fixed as the batch grows (Krizhevsky 2014)."""
    _check_positive("lr", lr)
    return lr * math.sqrt(_check_int("batch_size", batch_size, 1) / _check_int("base_batch_size", base_batch_size, 1))
