"""The verdict on a run: did it learn, diverge, or never learn? Decided from its losses and weight norms.

A run can diverge without a NaN: the loss climbs back to chance level while the weights explode.
``detect_divergence`` looks for each sign and dates it, and returns a ``Verdict`` whose ``outcome`` is
one of ``OUTCOMES``; ``nonfinite_step`` (a step, or None) is the one sign ``fit`` itself reports.
``all_finite`` is the check ``fit`` makes on the weights themselves (a step of ``lr=1e308`` leaves them
±inf, whatever the loss said). The word ``status`` belongs to ``summary.json`` (running, interrupted,
finished); ``Divergence`` and ``Verdict.status`` are the old names, kept for the code that reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from lamb_edu import backend
from lamb_edu.optim.checks import all_finite as array_is_finite

np = backend.np  # the verdict is computed on host copies of the recorded losses and norms

__all__ = ["CHANCE_LOSS", "OUTCOMES", "Verdict", "Divergence", "smoothed_loss", "short_run_window",
           "detect_divergence", "all_finite"]

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes: 2.303
OUTCOMES = ("learned", "diverged", "did not learn")


@dataclass
class Verdict:
    """The verdict on one run: ``outcome`` is "learned", "diverged" or "did not learn".

    ``step`` is the first step at which a sign of divergence appeared (None if none), ``reasons``
    says which signs, and ``lowest_loss`` is the lowest smoothed training loss the run reached.
    """

    outcome: str
    step: int | None
    reasons: list[str]
    lowest_loss: float

    @property
    def status(self) -> str:
        """The old name of ``outcome``."""
        return self.outcome

    def as_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON values."""
        return {"outcome": self.outcome, "step": self.step, "reasons": list(self.reasons),
                "lowest_loss": self.lowest_loss}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Verdict:
        """The inverse of ``as_dict``; a verdict written before ``outcome`` (``status``) still reads."""
        return cls(values.get("outcome", values.get("status")), values.get("step"), list(values.get("reasons", [])),
                   values.get("lowest_loss"))


Divergence = Verdict  # the old name


def short_run_window(steps: int, longest: int = 20) -> int:
    """The smoothing window for a run of ``steps`` steps: ``longest``, or a fifth of a short run (at least 1).

    A 20-step mean over a 30-step run still holds the first steps' losses near chance level, and would call
    a run that reached 84 % "did not learn".
    """
    return max(1, min(longest, steps // 5))


def smoothed_loss(step_loss: Sequence[float], window: int = 20) -> Any:
    """The mean of the last ``window`` step losses at each step (fewer at the start)."""
    losses = np.asarray(step_loss, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], losses]))
    ends = np.arange(1, losses.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def detect_divergence(
    step_loss: Sequence[float],
    weight_norm: Any = None,
    log_steps: Sequence[int] | None = None,
    stopped_at: int | None = None,
    *,
    window: int | None = None,
    learned_below: float = 1.0,
    chance_loss: float = CHANCE_LOSS,
    chance_margin: float = 0.1,
    norm_growth: float = 10.0,
) -> Verdict:
    """Decide whether a run learned, diverged, or never learned, from its losses and weight norms.

    Divergence need not produce NaN. Three signs count, each dated by its first step:
    - a non-finite loss, gradient or weight stopped training (``stopped_at``, the step ``fit`` reports);
    - after the ``window``-step mean loss fell below ``learned_below``, it climbed back to within
      ``chance_margin`` of chance level ln(10) ≈ 2.30: the network forgot everything it learned;
    - the norm of all parameters together, √(Σ‖w_layer‖²), grew more than ``norm_growth`` times its
      first logged value (``weight_norm`` has a row per entry of ``log_steps``, a column per parameter).
    A run whose mean loss never fell below ``learned_below`` "did not learn" (its signs are still
    listed); one that learned and then showed a sign "diverged"; otherwise it "learned". ``stopped_at``
    is the run's ``nonfinite_step``; ``window`` defaults to ``short_run_window`` of the run's length.
    """
    losses = np.asarray(step_loss, dtype=np.float64)
    window = window if window is not None else short_run_window(losses.size)
    smooth = smoothed_loss(losses, window) if losses.size else np.empty(0)
    finite = smooth[np.isfinite(smooth)]
    lowest = float(finite.min()) if finite.size else math.inf
    signs: list[tuple[int, str]] = []
    stopped = None if stopped_at is None or stopped_at is False else int(stopped_at)  # False: summaries before 0.2
    if stopped is not None:
        signs.append((stopped, f"the loss, a gradient or a weight was not finite at step {stopped}"))
    below = np.flatnonzero(smooth < learned_below)
    learned = below.size > 0
    if learned:
        later = np.flatnonzero(smooth[below[0]:] >= chance_loss - chance_margin)
        if later.size:
            step = int(below[0] + later[0] + 1)
            signs.append((step, f"the {window}-step mean loss fell to {lowest:.3f}, then returned to chance level "
                                f"(≥ {chance_loss - chance_margin:.2f}) at step {step}"))
    if weight_norm is not None and log_steps is not None and len(log_steps):
        # the norm of all parameters together: one small bias growing from 0.1 to 1 is not an explosion
        norms = np.asarray(weight_norm, dtype=np.float64).reshape(len(log_steps), -1)
        total = np.sqrt(np.sum(norms**2, axis=1))
        exploded = np.flatnonzero(~(total <= norm_growth * total[0]))  # a NaN/inf norm counts as exploded
        if exploded.size and total[0] > 0:
            row = exploded[0]
            step = int(log_steps[row])
            signs.append((step, f"the norm of all weights grew more than {norm_growth:g}× "
                                f"(from {total[0]:.3g} to {total[row]:.3g}) by step {step}"))
    signs.sort()
    reasons = [reason for _, reason in signs]
    first = signs[0][0] if signs else None
    if stopped is not None or (learned and signs):
        return Verdict("diverged", first, reasons, lowest)
    if not learned:
        return Verdict("did not learn", first, reasons, lowest)
    return Verdict("learned", None, [], lowest)


def all_finite(arrays: Iterable[Any]) -> bool:
    """True when every entry of every array is finite (``optim.checks.all_finite`` on each: no mask array)."""
    return all(array_is_finite(array) for array in arrays)
