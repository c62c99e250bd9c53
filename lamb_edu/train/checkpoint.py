"""Checkpoints: ``checkpoint.npz``, one file holding the weights, the optimizer arrays and a JSON document.

No pickle: arrays are ``.npz`` members (read with their headers checked first, ``checkpoint_file``),
everything else is the JSON document inside the same file: the optimizer's class (``"Lookahead(LAMB)"``),
the model's architecture (class, parameter names and shapes), the position, the history and the
scheduler. One file is one atomic unit: a kill at any moment leaves the previous checkpoint or the new
one. ``checkpoint.json`` beside it is a readable copy of the document for people and notebooks, written
after the ``.npz``; resuming never reads it (except from a checkpoint of the older two-file format).

``read_checkpoint`` checks everything first: types, keys, ranges, shapes, that every number is finite,
that the scheduler and the optimizer's step counts stand at the position's step, and that the file
fits this model, optimizer (class and every hyperparameter), scheduler and data settings;
``load_checkpoint`` changes the model, optimizer and scheduler only after that succeeded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from lamb_edu import backend
from lamb_edu.nn import Module
from lamb_edu.optim.optimizer import flatten_state_dict, unflatten_state_dict
from lamb_edu.train.checkpoint_file import read_checkpoint_arrays, read_checkpoint_document, write_checkpoint_file
from lamb_edu.train.checkpoint_fit import check_agrees, check_fits, describe_model, describe_optimizer
from lamb_edu.train.files import RunFileError, read_json, require, write_json
from lamb_edu.train.history import History
from lamb_edu.train.position import RUN_SETTINGS, Position

np = backend.np  # checkpoint files hold host arrays

__all__ = ["CHECKPOINT_NPZ", "CHECKPOINT_JSON", "CHECKPOINT_FILES", "Checkpoint", "save_checkpoint",
           "read_checkpoint", "load_checkpoint", "describe_optimizer", "describe_model", "has_checkpoint"]

CHECKPOINT_NPZ, CHECKPOINT_JSON = "checkpoint.npz", "checkpoint.json"
CHECKPOINT_FILES = (CHECKPOINT_NPZ, CHECKPOINT_JSON)
FORMAT = 3  # 3: one file; 2: checkpoint.npz with a 'step' member, and checkpoint.json


class Checkpoint(NamedTuple):
    """A checkpoint read and checked, not yet applied: arrays are host copies."""

    weights: dict[str, Any]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    history: History
    position: Position


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a checkpoint file."""
    return (Path(directory) / CHECKPOINT_NPZ).is_file()


def save_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, history: History,
                    position: Position, scheduler: Any = None, write: bool = True) -> None:
    """Write ``checkpoint.npz`` atomically (the checkpoint), then its readable copy ``checkpoint.json``.

    ``write=False`` only gathers the state (a collective for a sharded optimizer, which every rank
    must join) for another rank to write.
    """
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{key}": value for key, value in flatten_state_dict(optimizer.state_dict()).items()})
    if not write:
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "optimizer": {"class": describe_optimizer(optimizer)}, "model": describe_model(model),
                "position": position.as_dict(), "history": history.to_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None}
    write_checkpoint_file(directory / CHECKPOINT_NPZ, arrays, document)
    write_json(directory / CHECKPOINT_JSON, document, durable=False)  # for people: the .npz is the checkpoint


def read_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, scheduler: Any = None,
                    expected: Position | None = None) -> Checkpoint:
    """Read and check all of the checkpoint in ``directory``; change nothing.

    Raises FileNotFoundError when there is none, RunFileError (a ValueError) naming the file for
    anything damaged (a number that is not finite, a scheduler or step count that disagrees with the
    position), and ValueError naming both sides when it was saved with other data settings than
    ``expected`` (seed, batch size, training examples, accumulation), or from another optimizer class
    or hyperparameter, model architecture or scheduler setting.
    """
    directory = Path(directory)
    path = directory / CHECKPOINT_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {directory}: {path.name} is missing")
    document = read_checkpoint_document(path)
    if document is None:  # the older format: the document in checkpoint.json, the step in the .npz
        path = directory / CHECKPOINT_JSON
        document = read_json(path)
    require(isinstance(document, dict), path, "must hold a JSON object")
    missing = sorted({"optimizer", "model", "position", "history", "scheduler"} - set(document))
    require(not missing, path, f"lacks {missing} (written by an older lamb-edu? start a new run)")
    position = Position.from_dict(document["position"], path)
    for key in RUN_SETTINGS if expected is not None else ():
        if getattr(position, key) != getattr(expected, key):
            raise ValueError(f"cannot resume from {path}: it has {key}={getattr(position, key)}, "
                             f"this run asks for {getattr(expected, key)}")
    check_fits(document, path, model, optimizer, scheduler)
    history = _read_history(document["history"], path, model, position)
    shapes = {tuple(p.shape) for p in model.parameters()} | {()}
    arrays = read_checkpoint_arrays(directory / CHECKPOINT_NPZ, lambda name: _member_rule(name, model, shapes))
    weights, optimizer_state = _split_arrays(directory / CHECKPOINT_NPZ, arrays, model, position)
    check_agrees(path, optimizer_state, optimizer, document["scheduler"], scheduler, position)
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
        if isinstance(error, (KeyError, TypeError, ValueError)):  # a damaged state the optimizer did not recognise
            raise RunFileError(f"{Path(directory) / CHECKPOINT_NPZ}: the optimizer state does not load "
                               f"({type(error).__name__}: {error})") from None
        raise
    return saved.history, saved.position


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


def _member_rule(name: str, model: Module, shapes: set[tuple[int, ...]]) -> Any:
    """What a member of the ``.npz`` may hold: a weight its parameter's shape, optimizer arrays a parameter's."""
    parameters = dict(model.named_parameters())
    if name.startswith("model/"):
        parameter = parameters.get(name.removeprefix("model/"))
        if parameter is None:
            return None
        wanted = tuple(parameter.shape)
        return lambda dtype, shape: None if dtype.kind == "f" and shape == wanted else (
            f"is {dtype} {shape}, the parameter is float {wanted}")
    if name == "optimizer/__json__":
        return lambda dtype, shape: None if dtype.kind == "U" and shape == () and dtype.itemsize <= 2**26 else (
            f"must be one string of at most 16 M characters, got {dtype} {shape}")
    if name.startswith("optimizer/"):
        return lambda dtype, shape: None if dtype.kind == "f" and shape in shapes else (
            f"is {dtype} {shape}: optimizer arrays are floats of a parameter's shape")
    if name == "step":  # the older format
        return lambda dtype, shape: None if dtype.kind == "i" and shape == () else f"is {dtype} {shape}, not a step"
    return None


def _split_arrays(path: Path, arrays: dict[str, Any], model: Module, position: Position) -> tuple[dict, dict]:
    """The weights and the optimizer state of the ``.npz``'s arrays, every one present and finite."""
    step = arrays.pop("step", None)
    require(step is None or int(step) == position.step, path,
            f"holds step {step}, {CHECKPOINT_JSON} step {position.step}: the two files are from different steps")
    weights = {key.removeprefix("model/"): value for key, value in arrays.items() if key.startswith("model/")}
    for name, _ in model.named_parameters():
        require(name in weights, path, f"lacks the weights of {name}")
    for key, value in arrays.items():
        require(value.dtype.kind != "f" or bool(np.isfinite(value).all()), path, f"{key} holds NaN or inf")
    state = {key.removeprefix("optimizer/"): value for key, value in arrays.items() if key.startswith("optimizer/")}
    try:
        optimizer_state = unflatten_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError, RecursionError) as error:
        raise RunFileError(f"{path}: the optimizer state is damaged ({type(error).__name__}: {error})") from None
    return weights, optimizer_state
