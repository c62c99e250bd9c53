"""Checkpoints: ``checkpoint.npz`` (weights and optimizer arrays) and ``checkpoint.json`` (the rest).

No pickle: arrays go to ``.npz`` (read with ``allow_pickle=False``), everything else to JSON. The JSON
records the optimizer's class (``"Lookahead(LAMB)"``) and the model's architecture (class, parameter
names and shapes). ``read_checkpoint`` checks all of both files first (types, keys, ranges, shapes,
finiteness, that they belong to the same step, that they fit this model and optimizer);
``load_checkpoint`` changes the model, optimizer and scheduler only after that succeeded.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

from lamb_edu import backend
from lamb_edu.nn import Module
from lamb_edu.optim.optimizer import flatten_state_dict, unflatten_state_dict
from lamb_edu.train.files import RunFileError, read_json, require, write_atomically
from lamb_edu.train.history import History
from lamb_edu.train.position import RUN_SETTINGS, Position

np = backend.np  # checkpoint files hold host arrays

__all__ = ["CHECKPOINT_NPZ", "CHECKPOINT_JSON", "Checkpoint", "save_checkpoint", "read_checkpoint",
           "load_checkpoint", "describe_optimizer", "describe_model", "has_checkpoint"]

CHECKPOINT_NPZ, CHECKPOINT_JSON = "checkpoint.npz", "checkpoint.json"


class Checkpoint(NamedTuple):
    """A checkpoint read and checked, not yet applied: arrays are host copies."""

    weights: dict[str, Any]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    history: History
    position: Position


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


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a checkpoint (its JSON file, written last)."""
    return (Path(directory) / CHECKPOINT_JSON).is_file()


def save_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, history: History,
                    position: Position, scheduler: Any = None, write: bool = True) -> None:
    """Write ``checkpoint.npz`` then ``checkpoint.json``, each atomically.

    The JSON, written last, names the step the arrays belong to, so a crash between the two renames
    is detected on load. ``write=False`` only gathers the state (a collective for a sharded
    optimizer, which every rank must join) for another rank to write.
    """
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{key}": value for key, value in flatten_state_dict(optimizer.state_dict()).items()})
    if not write:
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays["step"] = np.asarray(position.step, dtype=np.int64)
    write_atomically(directory / CHECKPOINT_NPZ, lambda handle: np.savez(handle, **arrays))
    document = {"format": 2, "optimizer": {"class": describe_optimizer(optimizer)}, "model": describe_model(model),
                "position": position.as_dict(), "history": history.to_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None}
    text = json.dumps(document, allow_nan=False)
    write_atomically(directory / CHECKPOINT_JSON, lambda handle: handle.write(text.encode()))


def read_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, scheduler: Any = None,
                    expected: Position | None = None) -> Checkpoint:
    """Read and check both files of the checkpoint in ``directory``; change nothing.

    Raises FileNotFoundError when there is none, RunFileError (a ValueError) naming the file for
    anything damaged, and ValueError naming both sides when it was saved with other data settings
    than ``expected`` (seed, batch size, training examples, accumulation), or from another optimizer
    class, model architecture or scheduler setting.
    """
    directory = Path(directory)
    json_path, npz_path = directory / CHECKPOINT_JSON, directory / CHECKPOINT_NPZ
    for path in (json_path, npz_path):
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint in {directory}: {path.name} is missing")
    document = read_json(json_path)
    require(isinstance(document, dict), json_path, "must hold a JSON object")
    missing = sorted({"optimizer", "model", "position", "history", "scheduler"} - set(document))
    require(not missing, json_path, f"lacks {missing} (written by an older lamb-edu? start a new run)")
    position = Position.from_dict(document["position"], json_path)
    for key in RUN_SETTINGS if expected is not None else ():
        if getattr(position, key) != getattr(expected, key):
            raise ValueError(f"cannot resume from {json_path}: it has {key}={getattr(position, key)}, "
                             f"this run asks for {getattr(expected, key)}")
    _check_fits(document, json_path, model, optimizer, scheduler)
    history = _read_history(document["history"], json_path, model, position)
    weights, optimizer_state = _read_npz(npz_path, model, position)
    return Checkpoint(weights, optimizer_state, document["scheduler"], history, position)


def load_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, scheduler: Any = None,
                    expected: Position | None = None) -> tuple[History, Position]:
    """Restore model, optimizer (and scheduler) from ``directory``; return the saved history and position.

    Everything is read and checked first (``read_checkpoint``); on any error the model, optimizer
    and scheduler are left exactly as they were.
    """
    saved = read_checkpoint(directory, model, optimizer, scheduler, expected)
    previous_weights, previous_state = model.state_dict(), optimizer.state_dict()
    model.load_state_dict(saved.weights)
    try:
        optimizer.load_state_dict(saved.optimizer_state)
        if scheduler is not None:
            scheduler.load_state_dict(saved.scheduler_state)
    except Exception as error:
        model.load_state_dict(previous_weights)
        optimizer.load_state_dict(previous_state)
        if isinstance(error, (KeyError, TypeError)):  # a damaged state the optimizer did not recognise
            raise RunFileError(f"{Path(directory) / CHECKPOINT_NPZ}: the optimizer state does not load ({error!r})") from None
        raise
    return saved.history, saved.position


def _check_fits(document: dict[str, Any], path: Path, model: Module, optimizer: Any, scheduler: Any) -> None:
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
                                        and all(isinstance(lr, (int, float)) for lr in saved_scheduler["base_lrs"])
                                        and isinstance(saved_scheduler.get("last_step"), int)
                                        and saved_scheduler["last_step"] >= 0), path,
            "'scheduler' must be null or an object with a list 'base_lrs' and an integer 'last_step' >= 0")
    if (scheduler is None) != (saved_scheduler is None):
        raise ValueError(f"cannot resume from {path}: it was saved {'with' if saved_scheduler else 'without'} "
                         f"a learning-rate scheduler, this run has {'one' if scheduler is not None else 'none'}")


def _architecture(description: dict[str, Any]) -> str:
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in description["parameters"][:6])
    more = len(description["parameters"]) - 6
    return f"{description['class']} [{shapes}{f', … {more} more' if more > 0 else ''}]"


def _read_history(values: Any, path: Path, model: Module, position: Position) -> History:
    require(isinstance(values, dict), path, "'history' must be an object")
    try:
        history = History.from_dict(values)
    except (TypeError, ValueError) as error:
        raise RunFileError(f"{path}: 'history' is damaged ({error})") from None
    names = [name for name, _ in model.named_parameters()]
    require(history.parameter_names == names, path, "history.parameter_names do not match the model")
    require(history.steps == position.step, path,
            f"history has {history.steps} step losses, the position says {position.step} steps")
    require(len(history.epochs) == position.epoch, path,
            f"history has {len(history.epochs)} epoch records, the position says epoch {position.epoch}")
    return history


def _read_npz(path: Path, model: Module, position: Position) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every array of the ``.npz`` (reading each checks its CRC), split into weights and optimizer state."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, KeyError) as error:
        raise RunFileError(f"{path} is truncated or corrupt ({type(error).__name__}: {error})") from None
    step = arrays.pop("step", None)
    require(step is not None and step.shape == () and step.dtype.kind == "i", path, "has no integer 'step'")
    require(int(step) == position.step, path,
            f"holds step {int(step)}, {CHECKPOINT_JSON} step {position.step}: the two files are from different steps")
    weights = {key.removeprefix("model/"): value for key, value in arrays.items() if key.startswith("model/")}
    for name, parameter in model.named_parameters():
        value = weights.get(name)
        require(value is not None, path, f"lacks the weights of {name}")
        require(value.shape == parameter.shape and value.dtype.kind == "f", path,
                f"model/{name} is {value.dtype} {value.shape}, the parameter is float {parameter.shape}")
        require(bool(np.isfinite(value).all()), path, f"model/{name} holds NaN or inf")
    extra = sorted(set(weights) - {name for name, _ in model.named_parameters()})
    require(not extra, path, f"holds weights the model lacks: {extra}")
    state = {key.removeprefix("optimizer/"): value for key, value in arrays.items() if key.startswith("optimizer/")}
    try:
        optimizer_state = unflatten_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError) as error:
        raise RunFileError(f"{path}: the optimizer state is damaged ({error!r})") from None
    return weights, optimizer_state
