"""The optimizers of the large-batch study, each with its lr grid, scaling rule and search space.

``StudyOptimizer.make`` builds one for the lr-grid protocol (every knob but the lr at the study's
defaults); ``make_tuned`` builds one from a quasi-random trial's settings (``experiments.tuning``):
``one_minus_beta1`` is 1 - momentum for SGD and LARS and 1 - β1 for AdamW and LAMB,
``weight_decay`` is L2 for SGD and LARS (added to the gradient; LARS puts it inside the trust
ratio) and decoupled for AdamW and LAMB, ``eps`` is the Adam family's ε, and ``warmup_share`` is read
by the schedule, not the optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from lamb_edu import optim
from lamb_edu.experiments.tuning import Dimension, SearchSpace
from lamb_edu.optim import schedules

__all__ = ["StudyOptimizer", "STUDY_OPTIMIZERS", "search_space"]


def _ladder(low: float, count: int) -> tuple[float, ...]:
    """``count`` learning rates from ``low`` upwards, each twice the last."""
    return tuple(low * 2.0**k for k in range(count))


def search_space(lr: tuple[float, float], weight_decay: tuple[float, float], eps: bool) -> SearchSpace:
    """The study's space for one optimizer: the lr first (Halton base 2), 1 - β1, the warm-up share, the
    weight decay and, where ``eps``, ε; all log-uniform."""
    dimensions = [Dimension("lr", *lr), Dimension("one_minus_beta1", 0.01, 0.5),
                  Dimension("warmup_share", 0.01, 0.5), Dimension("weight_decay", *weight_decay)]
    return SearchSpace(tuple(dimensions + ([Dimension("eps", 1e-9, 1e-3)] if eps else [])))


@dataclass(frozen=True)
class StudyOptimizer:
    """One optimizer of the study: its class in ``lamb_edu.optim``, its scaling rule, lr grid and search space.

    ``name`` is what the run table records (and what ``lamb-edu train --optimizer`` takes); ``rule``
    is "linear" or "sqrt"; ``grid`` are the learning rates tried at every batch size; ``options``
    the other constructor keywords of the lr grid; ``space`` what the quasi-random protocol searches.
    """

    name: str
    label: str
    class_name: str
    rule: str
    grid: tuple[float, ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    space: SearchSpace | None = field(default=None, hash=False)

    def make(self, parameters: Sequence[Any], lr: float) -> Any:
        """The optimizer over ``parameters`` at learning rate ``lr``."""
        return getattr(optim, self.class_name)(parameters, lr=lr, **self.options)

    def make_tuned(self, parameters: Sequence[Any], lr: float, settings: dict[str, Any]) -> Any:
        """The optimizer over ``parameters`` at ``lr`` with a trial's ``settings`` (see the module's note)."""
        options = {key: value for key, value in self.options.items() if key not in ("momentum", "weight_decay")}
        beta1 = 1.0 - settings["one_minus_beta1"]
        if self.class_name in ("AdamW", "LAMB"):
            options.update(betas=(beta1, 0.999), eps=settings["eps"])
        else:
            options.update(momentum=beta1)
        return getattr(optim, self.class_name)(parameters, lr=lr, weight_decay=settings["weight_decay"], **options)

    def maker(self, settings: dict[str, Any]) -> Callable[[Sequence[Any], float], Any]:
        """What builds the optimizer of a run with ``settings`` (the key a run queue files it under): ``make``
        for the lr grid's empty settings, ``make_tuned`` with them otherwise."""
        if not settings:
            return self.make
        return lambda parameters, lr: self.make_tuned(parameters, lr, settings)

    def describe(self) -> dict[str, Any]:
        """What builds the optimizer, as plain JSON values (name, label, class_name, rule, grid, options):
        ``StudyOptimizer(**describe())`` makes the same optimizers (no search space)."""
        return {"name": self.name, "label": self.label, "class_name": self.class_name, "rule": self.rule,
                "grid": list(self.grid), "options": dict(self.options)}

    def scale(self, lr: float, batch_size: int, base_batch_size: int) -> float:
        """``lr`` tuned at ``base_batch_size``, scaled to ``batch_size`` by this optimizer's rule."""
        rule = schedules.linear_scaling if self.rule == "linear" else schedules.sqrt_scaling
        return rule(lr, batch_size, base_batch_size)


# Weight decay 0.01, decoupled, for AdamW and LAMB as in the LAMB paper; none for SGD and LARS. The
# grids were placed so that each spans the lrs that train at every batch size, with room on both sides;
# the search spaces' lr ranges span the same and a little more (the lr-only study's tuned lrs sit inside).
STUDY_OPTIMIZERS = (
    StudyOptimizer("sgd", "SGD + Nesterov momentum", "SGD", "linear", _ladder(0.0125, 8),
                   {"momentum": 0.9, "nesterov": True}, search_space((0.01, 2.0), (1e-6, 1e-3), eps=False)),
    StudyOptimizer("adamw", "AdamW", "AdamW", "sqrt", _ladder(0.0005, 8), {"weight_decay": 0.01},
                   search_space((3e-4, 0.1), (1e-4, 0.3), eps=True)),
    StudyOptimizer("lars", "LARS", "LARS", "linear", _ladder(1.0, 8), {"momentum": 0.9},
                   search_space((0.5, 200.0), (1e-6, 1e-3), eps=False)),
    StudyOptimizer("lamb", "LAMB", "LAMB", "sqrt", _ladder(0.0025, 8), {"weight_decay": 0.01},
                   search_space((1e-3, 0.5), (1e-4, 0.3), eps=True)),
)
