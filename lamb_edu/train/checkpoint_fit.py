"""Does a checkpoint belong to this run? Its optimizer, model and scheduler, and every setting they hold.

``check_fits`` compares what the document names (the optimizer's class, the model's architecture,
whether there is a scheduler); ``check_agrees`` compares the numbers inside: every hyperparameter of
every parameter group (the learning rate through the scheduler's ``base_lrs`` when there is one),
Lookahead's ``k`` and ``alpha``, and that the scheduler and the optimizer's step counts stand at the
position's step. A resumed run thus runs with the settings its summary records, or is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamb_edu.nn import Module
from lamb_edu.train.files import require
from lamb_edu.train.position import Position

__all__ = ["describe_optimizer", "describe_model", "check_fits", "check_agrees"]


def describe_optimizer(optimizer: Any) -> str:
    """The optimizer's class, with what a wrapper holds: ``"LAMB"``, ``"Lookahead(Adam)"``.

    An optimizer that saves another's state dict (a sharded one: its base's) names that one's class.
    """
    optimizer = getattr(optimizer, "saves_as", optimizer)
    inner = getattr(optimizer, "optimizer", None)
    name = type(optimizer).__name__
    return f"{name}({describe_optimizer(inner)})" if inner is not None else name


def describe_model(model: Module) -> dict[str, Any]:
    """The model's class and its parameters' names and shapes, as JSON values."""
    return {"class": type(model).__name__,
            "parameters": [[name, list(p.shape)] for name, p in model.named_parameters()]}


def check_fits(document: dict[str, Any], path: Path, model: Module, optimizer: Any, scheduler: Any) -> None:
    """ValueError naming both sides when the checkpoint is of another optimizer, model or scheduler setting."""
    saved_optimizer = document["optimizer"].get("class") if isinstance(document["optimizer"], dict) else None
    require(isinstance(saved_optimizer, str), path, "'optimizer' must be an object with a 'class' name")
    if saved_optimizer != describe_optimizer(optimizer):
        raise ValueError(f"cannot resume from {path}: it was saved from a {saved_optimizer} optimizer, "
                         f"this run uses {describe_optimizer(optimizer)}")
    saved_model = document["model"]
    require(isinstance(saved_model, dict) and isinstance(saved_model.get("class"), str)
            and isinstance(saved_model.get("parameters"), list), path,
            "'model' must be an object with 'class' and 'parameters'")
    if saved_model != describe_model(model):
        raise ValueError(f"cannot resume from {path}: it was saved from {_architecture(saved_model)}, "
                         f"this run's model is {_architecture(describe_model(model))}")
    saved_scheduler = document["scheduler"]
    require(saved_scheduler is None or (isinstance(saved_scheduler, dict)
                                        and isinstance(saved_scheduler.get("base_lrs"), list)
                                        and all(_is_number(lr) for lr in saved_scheduler["base_lrs"])
                                        and isinstance(saved_scheduler.get("last_step"), int)
                                        and saved_scheduler["last_step"] >= 0), path,
            "'scheduler' must be null or an object with a list 'base_lrs' and an integer 'last_step' >= 0")
    if (scheduler is None) != (saved_scheduler is None):
        raise ValueError(f"cannot resume from {path}: it was saved {'with' if saved_scheduler else 'without'} "
                         f"a learning-rate scheduler, this run has {'one' if scheduler is not None else 'none'}")


def check_agrees(path: Path, state: Any, optimizer: Any, saved_scheduler: dict[str, Any] | None, scheduler: Any,
                 position: Position) -> None:
    """The saved optimizer state and scheduler hold this run's settings and stand at ``position.step``.

    ValueError naming the setting and both values for a hyperparameter that differs (the checkpoint
    is of another run); RunFileError naming ``path`` for a state that contradicts its own position.
    """
    require(isinstance(state, dict) and isinstance(state.get("param_groups"), list)
            and isinstance(state.get("state"), dict), path, "the optimizer state lacks 'param_groups' or 'state'")
    target = getattr(optimizer, "saves_as", optimizer)
    groups = target.param_groups
    require(len(state["param_groups"]) == len(groups) and all(isinstance(g, dict) for g in state["param_groups"]),
            path, f"the optimizer state has {len(state['param_groups'])} parameter groups, this optimizer "
                  f"{len(groups)}")
    for index, (saved, group) in enumerate(zip(state["param_groups"], groups)):
        for key, value in group.items():
            if key in ("params", "param_names") or (key == "lr" and scheduler is not None):
                continue  # a scheduler moves the lr: its base_lrs are compared below
            _same(path, f"{key}" + (f" (group {index})" if len(groups) > 1 else ""), saved.get(key), value)
    lookahead = state.get("lookahead")
    if isinstance(lookahead, dict):
        for key in ("k", "alpha"):
            _same(path, f"lookahead {key}", lookahead.get(key), getattr(target, key, None))
    if scheduler is not None and saved_scheduler is not None:
        _same(path, "lr (the scheduler's base_lrs)", saved_scheduler["base_lrs"], list(scheduler.base_lrs))
        require(saved_scheduler["last_step"] == position.step, path,
                f"the scheduler stands at step {saved_scheduler['last_step']}, the position at step {position.step}")
    for index, entry in state["state"].items():
        step = entry.get("step") if isinstance(entry, dict) else None
        require(step is None or step == position.step, path,
                f"the optimizer state of parameter {index} counts {step} steps, the position {position.step}")


def _same(path: Path, setting: str, saved: Any, current: Any) -> None:
    if _plain(saved) != _plain(current):
        raise ValueError(f"cannot resume from {path}: it was saved with {setting} = {saved!r}, this run's "
                         f"optimizer has {current!r} (a run resumes with the settings it started with)")


def _plain(value: Any) -> Any:
    """Lists for tuples and Python numbers for NumPy's, so that a saved setting compares with the live one."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value.item() if hasattr(value, "item") else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _architecture(description: dict[str, Any]) -> str:
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in description["parameters"][:6])
    more = len(description["parameters"]) - 6
    return f"{description['class']} [{shapes}{f', … {more} more' if more > 0 else ''}]"

