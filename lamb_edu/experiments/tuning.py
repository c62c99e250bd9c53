"""A tuning protocol in the spirit of Nado et al. (2021): quasi-random search, validation-only selection.

"A Large Batch Optimizer Reality Check" showed that how a baseline is tuned decides whether it
looks worse than LARS or LAMB. Their protocol, which this module writes once for every study:

1. **A search space** (``SearchSpace``): each knob a ``Dimension`` with a range, log-uniform for
   scale-like knobs (the lr, 1 - β1, the weight decay, ε), and fixed values beside it.
2. **A budget of trials drawn quasi-randomly** (``halton``, a scrambled Halton sequence written in
   NumPy): the same number of trials for every optimizer and batch size, spread over the space more
   evenly than independent random draws, and the same for a given ``draw_seed``.
3. **Selection on a validation split only** (``validation_split`` carves one, fixed by its seed,
   off the training set). ``tune`` reads nothing but ``score(result)`` to choose; the test set plays
   no part in it.
4. **A report on fresh seeds**: the chosen setting is trained again from ``report_seeds``, which
   must not include the ``selection_seed`` the trials ran on, so the reported mean is not biased
   upwards by the luck that made it win.

Use::

    space = SearchSpace((Dimension("lr", 1e-3, 1.0), Dimension("one_minus_beta1", 0.01, 0.5)),
                        fixed={"eps": 1e-6})
    tuning = tune(lambda settings, seed: train_something(seed=seed, **settings), space, trials=8,
                  score=lambda run: run.validation_accuracy, report_seeds=(1, 2))
    tuning.best.settings, [run.test_accuracy for run in tuning.reports], tuning.summary()

``train(settings, seed)`` may return anything; ``score`` turns it into one number (higher is
better; NaN counts as the worst). ``warmup_steps`` turns a warm-up share and a floor in epochs into
steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from lamb_edu import backend

np = backend.np  # the draws and the splits are small host arrays

__all__ = ["PRIMES", "halton", "Dimension", "SearchSpace", "Trial", "Tuning", "tune", "validation_split",
           "warmup_steps"]

Result = TypeVar("Result")

# The Halton bases, one per dimension: enough for any search space here.
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _digit_count(base: int) -> int:
    # digits enough that the last one is below float64 resolution of [0, 1)
    return int(math.ceil(53 * math.log(2) / math.log(base)))


def halton(count: int, dimensions: int, seed: int = 0) -> Any:
    """``count`` points of a scrambled Halton sequence in [0, 1)^``dimensions`` (an array count × dimensions).

    Dimension j is the radical inverse of the point's index 0, 1, 2 … in base ``PRIMES[j]``, each
    digit position sent through its own random permutation of the digits (drawn from ``seed``).
    The permutation breaks the lock-step of the large bases (unscrambled, base 13's first points
    are 0, 1/13, 2/13 …, a line through the space) but keeps the stratification: the first b^k
    points of base b have one point in each interval [i / b^k, (i + 1) / b^k). Same ``seed``,
    same points.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)) or \
            not 1 <= dimensions <= len(PRIMES):
        raise ValueError(f"dimensions must be an integer from 1 to {len(PRIMES)}, got {dimensions!r}")
    rng = np.random.default_rng(seed)
    points = np.zeros((count, dimensions))
    for j, base in enumerate(PRIMES[:dimensions]):
        remaining = np.arange(count)
        scale = 1.0
        for _ in range(_digit_count(base)):
            permutation = rng.permutation(base)
            scale /= base
            points[:, j] += permutation[remaining % base] * scale
            remaining = remaining // base
    return np.minimum(points, np.nextafter(1.0, 0.0))  # rounding must not reach the excluded end


@dataclass(frozen=True)
class Dimension:
    """One knob of a search space: ``name`` drawn from [``low``, ``high``], on a "log" or "linear" ``scale``."""

    name: str
    low: float
    high: float
    scale: str = "log"

    def __post_init__(self) -> None:
        if self.scale not in ("log", "linear"):
            raise ValueError(f"dimension {self.name!r}: scale must be 'log' or 'linear', got {self.scale!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"dimension {self.name!r}: need finite low < high, got {self.low!r}, {self.high!r}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"dimension {self.name!r}: a log scale needs low > 0, got {self.low!r}")

    def value(self, u: float) -> float:
        """The value at position ``u`` in [0, 1) of the range (``u`` = 0 is ``low``)."""
        if self.scale == "log":
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def describe(self) -> dict[str, Any]:
        """The dimension as plain JSON values."""
        return {"name": self.name, "low": self.low, "high": self.high, "scale": self.scale}


@dataclass(frozen=True)
class SearchSpace:
    """The ``dimensions`` searched (the first gets Halton base 2, the most even: put the lr first) and
    ``fixed`` settings every trial shares."""

    dimensions: tuple[Dimension, ...]
    fixed: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if not names or len(set(names)) != len(names) or set(names) & set(self.fixed):
            raise ValueError(f"a search space needs at least one dimension and distinct names; got {names} and "
                             f"fixed {sorted(self.fixed)}")

    def draw(self, count: int, seed: int = 0) -> list[dict[str, Any]]:
        """``count`` settings (dicts: the fixed ones, then one value per dimension) from ``halton(count, ·, seed)``."""
        points = halton(count, len(self.dimensions), seed)
        return [{**self.fixed, **{d.name: d.value(u) for d, u in zip(self.dimensions, point)}} for point in points]

    def describe(self) -> dict[str, Any]:
        """The space as plain JSON values (what a report records)."""
        return {"dimensions": [d.describe() for d in self.dimensions], "fixed": dict(self.fixed)}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "SearchSpace":
        """The space back from ``describe()``."""
        return cls(tuple(Dimension(**entry) for entry in description["dimensions"]), dict(description["fixed"]))


@dataclass
class Trial(Generic[Result]):
    """Trial ``index`` of a tuning: its ``settings``, what ``train`` returned (``result``) and its ``score``."""

    index: int
    settings: dict[str, Any]
    result: Result
    score: float


@dataclass
class Tuning(Generic[Result]):
    """What ``tune`` did: the ``trials`` (selection seed), the ``best`` one's index, and the ``reports``
    (the best settings trained again from each of ``report_seeds``, in that order)."""

    space: SearchSpace
    trials: list[Trial[Result]]
    best_index: int
    selection_seed: int
    draw_seed: int
    report_seeds: tuple[int, ...]
    reports: list[Result]

    @property
    def best(self) -> Trial[Result]:
        """The chosen trial: best score on the validation split (ties: the earliest)."""
        return self.trials[self.best_index]

    def summary(self) -> dict[str, Any]:
        """The protocol's record: trial count, search space, seeds, each trial's settings and score, the best one."""
        return {"trials": len(self.trials), "space": self.space.describe(), "draw_seed": self.draw_seed,
                "selection_seed": self.selection_seed, "report_seeds": list(self.report_seeds),
                "scores": [trial.score for trial in self.trials],
                "best": {"index": self.best_index, "settings": dict(self.best.settings), "score": self.best.score}}


def _check_seeds(trials: int, selection_seed: int, report_seeds: Sequence[int]) -> None:
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials must be an integer >= 1, got {trials!r}")
    if selection_seed in report_seeds:
        raise ValueError(f"the report seeds {list(report_seeds)} must leave out the selection seed {selection_seed}")
    if len(set(report_seeds)) != len(report_seeds):
        raise ValueError(f"the report seeds {list(report_seeds)} repeat a seed")


def tune(train: Callable[[dict[str, Any], int], Result], space: SearchSpace, trials: int, *,
         score: Callable[[Result], float], draw_seed: int = 0, selection_seed: int = 0,
         report_seeds: Sequence[int] = (1, 2)) -> Tuning[Result]:
    """Run ``trials`` settings drawn from ``space``, pick the best by ``score``, re-run it on ``report_seeds``.

    ``train(settings, seed)`` trains one setting from one seed; ``score(result)`` must read the
    validation split only (higher is better; NaN is the worst). Every trial runs from
    ``selection_seed``; the chosen settings then run from each of ``report_seeds`` (ValueError if
    they include ``selection_seed``). Everything is checked before anything trains.
    """
    _check_seeds(trials, selection_seed, report_seeds)
    draws = space.draw(trials, draw_seed)
    # every trial is asked for before any is read, so a study's workers can train them at once (run_pool)
    results = [train(dict(settings), selection_seed) for settings in draws]
    done = []
    for index, (settings, result) in enumerate(zip(draws, results)):
        value = float(score(result))
        done.append(Trial(index, settings, result, value if math.isfinite(value) else -math.inf))
    best = max(range(len(done)), key=lambda i: (done[i].score, -i))
    reports = [train(dict(done[best].settings), seed) for seed in report_seeds]
    return Tuning(space, done, best, selection_seed, draw_seed, tuple(report_seeds), reports)


def validation_split(count: int, validation_size: int, seed: int = 0) -> tuple[Any, Any]:
    """A fixed split of ``count`` training examples: (training indices, validation indices), both sorted.

    The ``validation_size`` validation examples are a random subset drawn from ``seed``, so the same
    seed always holds out the same examples; they never overlap the training indices. The test set
    is not an input: selection on this split cannot see it.
    """
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)) or \
            not 1 <= validation_size < count:
        raise ValueError(f"validation_size must be an integer from 1 to {count - 1} (count is {count}), "
                         f"got {validation_size!r}")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[validation_size:]), np.sort(order[:validation_size])


def warmup_steps(total_steps: int, steps_per_epoch: int, share: float, floor_epochs: float = 0.0) -> int:
    """Warm-up steps: ``share`` of ``total_steps`` but at least ``floor_epochs`` epochs, and below ``total_steps``.

    The LAMB paper scales the warm-up with the batch and Goyal et al. warm up for a fixed number of
    epochs; a share with a floor in epochs covers both.
    """
    if not 0 <= share <= 1 or floor_epochs < 0 or total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"need 0 <= share <= 1, floor_epochs >= 0 and steps >= 1; got share {share!r}, "
                         f"floor_epochs {floor_epochs!r}, total_steps {total_steps!r}, "
                         f"steps_per_epoch {steps_per_epoch!r}")
    steps = max(math.ceil(share * total_steps), math.ceil(floor_epochs * steps_per_epoch))
    return min(total_steps - 1, steps)
