"""The training loop: ``fit`` trains a model on MNIST with any optimizer and returns a ``History``.

Each step is the textbook one: forward, cross-entropy, backward, ``optimizer.step()``. Around it
``fit`` records what the article looks at:

- the loss of every step, and per epoch the mean training loss, the test loss and accuracy, and the
  seconds the epoch took;
- every ``log_every`` steps (and at step 1), per parameter: the weight norm ‖w‖ the step started from,
  and for optimizers that record them (LAMB, LARS, also through Lookahead) the update norm ‖u‖ and
  the trust ratio they computed, read from ``optimizer.state[p]``.

A non-finite loss, or a gradient the optimizer refuses (``FloatingPointError``), ends training
cleanly: the step is not taken, ``history.diverged`` holds its number, and the weights stay those of
the last good step. With ``checkpoint_dir`` the model, the optimizer, the history and the position in
the data are saved (``checkpoint.npz`` + ``checkpoint.json``, no pickle); ``resume=True`` continues
from there and ends bit-identical to a run that was never interrupted, because each epoch's shuffle
depends only on ``(seed, epoch)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

from lamb_edu import backend
from lamb_edu.autograd import Tensor, no_grad
from lamb_edu.backend import xp
from lamb_edu.data import batches, prepare
from lamb_edu.nn import Module, cross_entropy
from lamb_edu.optim.optimizer import flatten_state_dict, unflatten_state_dict

np = backend.np  # host NumPy for the history arrays and checkpoint files

__all__ = ["History", "fit", "evaluate", "trust_statistics", "save_checkpoint", "load_checkpoint", "json_safe",
           "write_atomically", "train_step"]

TRUST_KEYS = ("weight_norm", "update_norm", "trust_ratio")
CHECKPOINT_NPZ, CHECKPOINT_JSON = "checkpoint.npz", "checkpoint.json"


@dataclasses.dataclass
class History:
    """Everything ``fit`` measured; ``to_dict()`` is JSON-ready and ``from_dict`` reads it back.

    ``epochs`` holds one dict per epoch (``epoch``, ``steps``, ``train_loss``, ``test_loss``,
    ``test_accuracy`` as a fraction, ``seconds``). ``log_steps`` are the step numbers of the rows of
    ``weight_norm``, ``update_norm`` and ``trust_ratio`` (each ``n_logs x n_params``, columns in the
    order of ``parameter_names``); the last two stay empty for optimizers that do not record them.
    ``diverged`` is False or the number of the step whose loss or gradient was not finite.
    """

    parameter_names: list[str] = dataclasses.field(default_factory=list)
    step_loss: list[float] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    log_steps: list[int] = dataclasses.field(default_factory=list)
    log_lr: list[float] = dataclasses.field(default_factory=list)
    weight_norm: list[list[float]] = dataclasses.field(default_factory=list)
    update_norm: list[list[float]] = dataclasses.field(default_factory=list)
    trust_ratio: list[list[float]] = dataclasses.field(default_factory=list)
    diverged: int | bool = False
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Optimizer steps taken."""
        return len(self.step_loss)

    @property
    def records_trust(self) -> bool:
        """True when the optimizer recorded update norms and trust ratios."""
        return bool(self.trust_ratio)

    def final(self) -> dict[str, Any]:
        """The last epoch's ``train_loss``, ``test_loss`` and ``test_accuracy`` (None before any epoch)."""
        last = self.epochs[-1] if self.epochs else {}
        return {key: last.get(key) for key in ("train_loss", "test_loss", "test_accuracy")}

    def trust_arrays(self) -> dict[str, Any]:
        """Host arrays for ``trust.npz``: ``steps``, ``lr``, ``names`` and ``<name>/<statistic>`` per parameter."""
        arrays: dict[str, Any] = {
            "steps": np.asarray(self.log_steps, dtype=np.int64),
            "lr": np.asarray(self.log_lr, dtype=np.float64),
            "names": np.asarray(self.parameter_names, dtype=str),
        }
        for key in TRUST_KEYS:
            table = getattr(self, key)
            if not table:
                continue
            table = np.asarray(table, dtype=np.float64).reshape(len(table), len(self.parameter_names))
            for column, name in enumerate(self.parameter_names):
                arrays[f"{name}/{key}"] = table[:, column]
        return arrays

    def to_dict(self) -> dict[str, Any]:
        """A plain dict; non-finite floats become None so the result is strict JSON."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """The inverse of ``to_dict`` (None losses come back as NaN)."""
        values = dict(values)
        values["step_loss"] = [math.nan if v is None else v for v in values.get("step_loss", [])]
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls) if field.name in values})


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±inf replaced by None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _innermost(optimizer: Any) -> Any:
    """The optimizer that keeps per-parameter state: Lookahead and similar wrappers are looked through."""
    while getattr(optimizer, "optimizer", None) is not None:
        optimizer = optimizer.optimizer
    return optimizer


def trust_statistics(optimizer: Any, parameters: list[Tensor]) -> dict[str, list[float]] | None:
    """Per parameter, the ``weight_norm``, ``update_norm`` and ``trust_ratio`` the last step recorded.

    None when the optimizer (or the one a wrapper holds) keeps no such entries, as Adam or SGD.
    """
    state = getattr(_innermost(optimizer), "state", {})
    entries = [state.get(p) for p in parameters]
    if not all(entry is not None and all(key in entry for key in TRUST_KEYS) for entry in entries):
        return None
    return {key: [float(entry[key]) for entry in entries] for key in TRUST_KEYS}


def _norm(array: Any) -> float:
    flat = array.reshape(-1)
    return math.sqrt(float(xp.dot(flat, flat)))


def evaluate(model: Module, x: Any, y: Any, batch_size: int = 2000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of ``model`` on ``(x, y)``, without building a graph."""
    total_loss, correct = 0.0, 0
    with no_grad(), np.errstate(over="ignore", invalid="ignore"):
        for begin in range(0, len(x), batch_size):
            xb, yb = x[begin : begin + batch_size], y[begin : begin + batch_size]
            logits = model(Tensor(xb))
            total_loss += cross_entropy(logits, yb).item() * len(xb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def _current_lr(optimizer: Any) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any, history: History, position: dict,
                    scheduler: Any = None) -> None:
    """Write ``checkpoint.npz`` (weights and optimizer arrays) and ``checkpoint.json`` (the rest).

    Each file goes to a temporary name first and is renamed when complete; the JSON, written last,
    names the step the arrays belong to, so a crash between the two renames is detected on load.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{key}": value for key, value in flatten_state_dict(optimizer.state_dict()).items()})
    arrays["step"] = np.asarray(position["step"], dtype=np.int64)
    write_atomically(directory / CHECKPOINT_NPZ, lambda handle: np.savez(handle, **arrays))
    document = {"position": position, "history": history.to_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None}
    write_atomically(directory / CHECKPOINT_JSON, lambda handle: handle.write(json.dumps(document).encode()))


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``.

    Readers see the old file or the complete new one, never half a file; on any error the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(directory: str | os.PathLike, model: Module, optimizer: Any,
                    scheduler: Any = None) -> tuple[History, dict]:
    """Restore model, optimizer (and scheduler) from ``directory``; return the saved history and position.

    Raises FileNotFoundError when there is no checkpoint and ValueError when its two files disagree
    or do not fit the model or optimizer (which are then left unchanged).
    """
    directory = Path(directory)
    with open(directory / CHECKPOINT_JSON, encoding="utf-8") as handle:
        document = json.load(handle)
    with np.load(directory / CHECKPOINT_NPZ, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    position = document["position"]
    if int(arrays.pop("step")) != position["step"]:
        raise ValueError(f"checkpoint in {directory} is inconsistent: its .npz and .json are from different steps")
    weights = {key.removeprefix("model/"): value for key, value in arrays.items() if key.startswith("model/")}
    optimizer_state = unflatten_state_dict(
        {key.removeprefix("optimizer/"): value for key, value in arrays.items() if key.startswith("optimizer/")}
    )
    saved_weights = model.state_dict()
    model.load_state_dict(weights)
    if (scheduler is None) != (document.get("scheduler") is None):
        raise ValueError(f"checkpoint in {directory} was saved {'with' if document.get('scheduler') else 'without'} "
                         "a learning-rate scheduler; resume it the same way")
    try:
        optimizer.load_state_dict(optimizer_state)
    except Exception:
        model.load_state_dict(saved_weights)
        raise
    if scheduler is not None:
        scheduler.load_state_dict(document["scheduler"])
    return History.from_dict(document["history"]), position


# ---------------------------------------------------------------------------- the loop
def fit(
    model: Module,
    optimizer: Any,
    data: Any,
    epochs: int,
    batch_size: int,
    *,
    seed: int = 0,
    train_size: int | None = None,
    log_every: int = 10,
    scheduler: Any = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> History:
    """Train ``model`` on ``data`` (an ``MNIST`` of host arrays) and return its ``History``.

    Mini-batches of ``batch_size`` come from the first ``train_size`` training examples (all when
    None), shuffled each epoch by ``(seed, epoch)``. ``scheduler`` (an ``optim.schedules.LRScheduler``)
    has its ``step()`` called after every optimizer step and is saved in checkpoints. ``callback``
    receives a dict for every logged step (``type`` "step") and every epoch (``type`` "epoch"). With
    ``checkpoint_dir`` a checkpoint is written every ``checkpoint_every`` steps and at the end of every
    epoch; ``resume=True`` starts from it when it exists.
    """
    if epochs < 0 or batch_size < 1 or log_every < 1:
        raise ValueError(f"need epochs >= 0, batch_size >= 1 and log_every >= 1; got {epochs}, {batch_size}, {log_every}")
    if train_size is not None and not 1 <= train_size <= len(data.train_images):
        raise ValueError(f"train_size must be between 1 and {len(data.train_images)}, got {train_size}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    count = train_size or len(data.train_images)
    x_train, y_train = prepare(data.train_images[:count], data.train_labels[:count])
    x_test, y_test = prepare(data.test_images, data.test_labels)
    named = list(model.named_parameters())
    parameters = [p for _, p in named]

    history = History(parameter_names=[name for name, _ in named])
    position = {"epoch": 0, "batch": 0, "step": 0, "epoch_loss_sum": 0.0, "epoch_examples": 0, "epoch_seconds": 0.0,
                "seed": seed, "batch_size": batch_size, "train_size": count}
    if resume and (Path(checkpoint_dir) / CHECKPOINT_JSON).is_file():
        saved = json.loads((Path(checkpoint_dir) / CHECKPOINT_JSON).read_text(encoding="utf-8"))["position"]
        for key, value in (("seed", seed), ("batch_size", batch_size), ("train_size", count)):
            if saved[key] != value:  # checked before anything is loaded
                raise ValueError(f"cannot resume: the checkpoint has {key}={saved[key]}, this run asks for {value}")
        history, position = load_checkpoint(checkpoint_dir, model, optimizer, scheduler)
    steps_per_epoch = math.ceil(count / batch_size)
    run_started = time.perf_counter() - history.seconds

    def checkpoint() -> None:
        if checkpoint_dir is not None:
            history.seconds = time.perf_counter() - run_started
            save_checkpoint(checkpoint_dir, model, optimizer, history, position, scheduler)

    while position["epoch"] < epochs and not history.diverged:
        epoch = position["epoch"]
        epoch_started = time.perf_counter() - position["epoch_seconds"]
        bar = _progress_bar(progress, steps_per_epoch, position["batch"], f"epoch {epoch + 1}/{epochs}")
        running_loss = None
        try:
            for xb, yb in batches(x_train, y_train, batch_size, seed, epoch, start=position["batch"]):
                step = position["step"] + 1
                logging = step == 1 or step % log_every == 0
                # Our own ‖w‖ only for optimizers that do not record theirs (LAMB and LARS already computed it).
                norms_before = [_norm(p.data) for p in parameters] if logging and not history.records_trust else []
                lr = _current_lr(optimizer)  # the lr this step uses (a scheduler changes it after the step)

                loss_value = train_step(model, optimizer, xb, yb)
                if loss_value is None:
                    history.diverged = step
                    _log_last_good_step(history, epoch, callback)
                    break

                if scheduler is not None:
                    scheduler.step()
                position.update(step=step, batch=position["batch"] + 1)
                position["epoch_loss_sum"] += loss_value * len(yb)
                position["epoch_examples"] += len(yb)
                history.step_loss.append(loss_value)
                if logging:
                    _log_step(history, optimizer, parameters, norms_before, lr, step, epoch, callback)
                running_loss = loss_value if running_loss is None else 0.9 * running_loss + 0.1 * loss_value
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
                if checkpoint_every is not None and step % checkpoint_every == 0:
                    position["epoch_seconds"] = time.perf_counter() - epoch_started
                    checkpoint()
        finally:
            if bar is not None:
                bar.close()
        test_loss, test_accuracy = evaluate(model, x_test, y_test)
        record = {
            "epoch": epoch + 1,
            "steps": position["step"],
            "train_loss": position["epoch_loss_sum"] / max(position["epoch_examples"], 1),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "seconds": time.perf_counter() - epoch_started,
        }
        if history.diverged:
            record["diverged"] = history.diverged
        history.epochs.append(record)
        position.update(epoch=epoch + 1, batch=0, epoch_loss_sum=0.0, epoch_examples=0, epoch_seconds=0.0)
        if not history.diverged:
            checkpoint()
        if callback is not None:
            callback({"type": "epoch", **record})
    history.seconds = time.perf_counter() - run_started
    return history


def train_step(model: Module, optimizer: Any, x: Any, y: Any) -> float | None:
    """One step: forward, cross-entropy, backward, ``optimizer.step()``; returns the loss.

    Returns None, without stepping, when the loss is not finite or the optimizer refuses a NaN/inf
    gradient (it raises FloatingPointError before changing anything). Overflow warnings from a
    diverging run are silenced: divergence is reported by the return value instead.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        loss = cross_entropy(model(Tensor(x)), y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return None
        model.zero_grad()
        loss.backward()
        try:
            optimizer.step()
        except FloatingPointError:
            return None
    return loss_value


def _log_step(history: History, optimizer: Any, parameters: list[Tensor], norms_before: list[float], lr: float,
              step: int, epoch: int, callback: Callable[[dict[str, Any]], Any] | None) -> None:
    """Append one row of norms (and trust statistics, when the optimizer recorded them)."""
    recorded = trust_statistics(optimizer, parameters)
    history.log_steps.append(step)
    history.log_lr.append(lr)
    # Prefer the optimizer's own ‖w‖ (what its trust ratio used); both are the norm before the step.
    history.weight_norm.append(recorded["weight_norm"] if recorded else norms_before)
    if recorded:
        history.update_norm.append(recorded["update_norm"])
        history.trust_ratio.append(recorded["trust_ratio"])
    if callback is not None:
        since = history.log_steps[-2] if len(history.log_steps) > 1 else 0
        event = {"type": "step", "step": step, "epoch": epoch + 1, "loss": history.step_loss[-1],
                 "loss_avg": sum(history.step_loss[since:]) / (step - since), "lr": history.log_lr[-1]}
        for key in TRUST_KEYS:
            if getattr(history, key) and len(getattr(history, key)) == len(history.log_steps):
                event[key] = dict(zip(history.parameter_names, getattr(history, key)[-1]))
        callback(event)


def _log_last_good_step(history: History, epoch: int,
                        callback: Callable[[dict[str, Any]], Any] | None) -> None:
    """Before stopping a diverged run, report the loss up to the last good step (so curves show the blow-up)."""
    last_logged = history.log_steps[-1] if history.log_steps else 0
    if callback is None or history.steps <= last_logged:
        return
    callback({"type": "step", "step": history.steps, "epoch": epoch + 1, "loss": history.step_loss[-1],
              "loss_avg": sum(history.step_loss[last_logged:]) / (history.steps - last_logged)})


def _progress_bar(enabled: bool, total: int, initial: int, description: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415  (only when a bar is shown)

    return tqdm(total=total, initial=initial, desc=description, unit="step", leave=False, dynamic_ncols=True)
