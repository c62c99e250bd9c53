"""The folder of one ``lamb-edu train`` run: every file in it is read and written here (and in ``checkpoint``).

A run folder holds ``summary.json``, ``metrics.jsonl``, ``trust.npz``, ``curves.png``, the checkpoint
(``checkpoint.npz`` and its readable copy ``checkpoint.json``) and, while a process writes it, its lock
(``run_lock``). ``summary.json`` is written first with ``"status": "running"``, rewritten
``"interrupted"`` (with the step the checkpoint holds) on Ctrl-C, and ``"finished"`` last, after the
other files are complete; every write is atomic. Each run gets a ``run_id``, in ``summary.json`` and in
the first line of ``metrics.jsonl``, so that files of two runs are never read as one.

Two runs never mix in one folder: a new run needs an empty folder (or ``clear_run_files``, which
deletes only the files a run writes, after checking all of them), and a folder has one writer at a
time (``RunLock``). ``read_run`` checks a finished run (its two files agree: the same ``run_id``, the same
epoch records) before ``lamb-edu plot`` draws it; ``metrics_kept_at`` checks ``metrics.jsonl`` before a
resumed run rewrites it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, TextIO

from lamb_edu.train.checkpoint import CHECKPOINT_FILES
from lamb_edu.train.files import (
    RunFileError,
    is_temporary_of,
    parse_json,
    read_json,
    require,
    write_atomically,
    write_json,
)
from lamb_edu.train.history import json_safe
from lamb_edu.train.run_lock import LOCK_FILE

__all__ = ["SUMMARY", "METRICS", "TRUST", "CURVES", "RUN_FILES", "STATUSES", "new_run_id", "run_files_present",
           "clear_run_files", "remove_temporaries", "write_summary", "read_summary", "summary_nonfinite_step",
           "MetricsLog", "metrics_kept_at", "read_run"]

SUMMARY, METRICS, TRUST, CURVES = "summary.json", "metrics.jsonl", "trust.npz", "curves.png"
RUN_FILES = (SUMMARY, METRICS, TRUST, CURVES, *CHECKPOINT_FILES)
STATUSES = ("running", "interrupted", "finished")


def new_run_id() -> str:
    """A fresh identifier for a run (random: two runs never share one)."""
    return uuid.uuid4().hex


def run_files_present(folder: Path) -> tuple[list[str], list[str]]:
    """The names in ``folder`` a run owns (its files, their temporary files, a lock), and every other name."""
    names = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    owned = [name for name in names if name in RUN_FILES or name == LOCK_FILE
             or any(is_temporary_of(name, target) for target in RUN_FILES)]
    return owned, [name for name in names if name not in owned]


def clear_run_files(folder: Path) -> None:
    """Delete the files of the run in ``folder`` (not its lock), after checking that every one is a plain file.

    Refuses (ValueError naming them) before deleting anything when the folder also holds anything a run
    does not write (a user's file, even one ending in ``.part``), or when a run file is not a plain file.
    """
    owned, foreign = run_files_present(folder)
    if foreign:
        raise ValueError(f"{folder} holds files no run writes ({', '.join(foreign[:4])}"
                         f"{', …' if len(foreign) > 4 else ''}); not deleting anything")
    odd = [name for name in owned if (folder / name).is_symlink() or not (folder / name).is_file()]
    if odd:
        raise ValueError(f"{folder / odd[0]} is not a plain file; not deleting anything")
    for name in owned:
        if name != LOCK_FILE:
            (folder / name).unlink()


def remove_temporaries(folder: Path) -> None:
    """Delete the temporary files killed writers left beside the run's files (the caller holds the folder's lock)."""
    for name in run_files_present(folder)[0]:
        if name not in RUN_FILES and name != LOCK_FILE:
            (folder / name).unlink(missing_ok=True)


def write_summary(folder: Path, status: str, document: dict[str, Any]) -> None:
    """(Re)write ``summary.json`` atomically with ``status`` first."""
    write_json(folder / SUMMARY, {"status": status, **document}, indent=2)


def read_summary(folder: Path) -> dict[str, Any]:
    """``summary.json`` of a run folder, checked for its shape (RunFileError naming the file)."""
    path = folder / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a lamb-edu run directory: {path} is missing")
    summary = read_json(path)
    require(isinstance(summary, dict), path, "must hold a JSON object")
    require(summary.get("status", "finished") in STATUSES, path, f"'status' must be one of {', '.join(STATUSES)}")
    require(isinstance(summary.get("settings"), dict), path, "lacks its 'settings' object")
    require(isinstance(summary["settings"].get("optimizer"), str), path, "settings.optimizer must be a name")
    require(summary.get("run_id") is None or isinstance(summary["run_id"], str), path, "'run_id' must be a string")
    step = summary_nonfinite_step(summary)
    require(step is None or (isinstance(step, int) and not isinstance(step, bool) and step >= 1), path,
            f"'nonfinite_step' must be null or a step number, got {step!r}")
    epochs = summary.get("epochs", [])
    require(isinstance(epochs, list) and all(isinstance(record, dict) for record in epochs), path,
            "'epochs' must be a list of records")
    return summary


def summary_nonfinite_step(summary: dict[str, Any]) -> Any:
    """The step at which the run stopped on a non-finite number (``diverged`` in files before 0.3; false: none)."""
    step = summary.get("nonfinite_step", summary.get("diverged"))
    return None if step is False else step


class MetricsLog:
    """``metrics.jsonl``: a header line naming the run, then one JSON line per logged step and per epoch."""

    def __init__(self, path: Path, run_id: str, kept: list[str] | None = None) -> None:
        """Start the file for a new run, or (``kept``: the lines ``metrics_kept_at`` returned) continue one."""
        if kept is not None:
            text = "".join(line + "\n" for line in kept)
            write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
        self._file: TextIO = open(path, "a" if kept is not None else "w", encoding="utf-8")
        if kept is None:
            self.write({"type": "run", "run_id": run_id})

    def write(self, event: dict[str, Any]) -> None:
        """Append one event as a line, flushed (a kill loses at most the line being written)."""
        self._file.write(json.dumps(json_safe(event)) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def metrics_kept_at(folder: Path, run_id: str | None, step: int, epoch: int) -> list[str]:
    """The lines of ``metrics.jsonl`` a run resumed at ``step`` (in epoch ``epoch``) keeps; nothing is written.

    Every line must be an event of this run (its header's ``run_id``); only the last may be torn (the
    line a kill interrupted). RunFileError naming the file and line otherwise.
    """
    path = folder / METRICS
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    header = json.dumps({"type": "run", "run_id": run_id})
    if not lines and run_id is not None:
        return [header]  # killed before its first line: the header is written again
    kept: list[str] = []
    for number, line in enumerate(lines, start=1):
        if number == len(lines) and not _parses(line):
            break  # torn by a kill: the resumed run writes it again
        event = _check_event(line, f"{path}, line {number}")
        if event["type"] == "run":
            require(number == 1 and (run_id is None or event.get("run_id") == run_id), f"{path}, line {number}",
                    f"is the header of run {event.get('run_id')!r}, {SUMMARY} names run {run_id!r}")
            kept.append(line)
        elif number == 1 and run_id is not None:
            raise RunFileError(f"{path}: lacks the header line of run {run_id!r}: it is not this run's file")
        elif (event["epoch"] <= epoch if event["type"] == "epoch" else event["step"] <= step):
            kept.append(line)
    return kept or ([header] if run_id is not None else [])


def read_run(folder: Path) -> dict[str, Any]:
    """A finished run's curves, after checking that its two files belong together; RunFileError naming the file.

    Returns a dict: ``label`` (the folder's name), ``settings``, ``run_id``, ``steps`` and ``loss`` (the mean
    training loss between logged steps), ``epochs`` and ``test_accuracy``, and ``nonfinite_step``.
    """
    summary = read_summary(folder)
    if summary.get("status", "finished") != "finished":
        raise RunFileError(f"{folder} holds an unfinished run (status {summary['status']!r}): "
                           f"finish it with `lamb-edu train --resume {folder}` first")
    path = folder / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a lamb-edu run directory: {path} is missing")
    run = {"label": folder.name, "settings": summary["settings"], "run_id": summary.get("run_id"), "steps": [],
           "loss": [], "epochs": [], "test_accuracy": [], "nonfinite_step": summary_nonfinite_step(summary)}
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        event = _check_event(line, f"{path}, line {number}")
        if event["type"] == "run":
            require(number == 1 and event.get("run_id") == run["run_id"], f"{path}, line {number}",
                    f"is of run {event.get('run_id')!r}, {SUMMARY} of run {run['run_id']!r}: the files are from "
                    "different runs")
        elif event["type"] == "step":
            run["steps"].append(event["step"])
            run["loss"].append(event["loss_avg"])
        else:
            records.append(event)
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    require(run["run_id"] is None or '"type": "run"' in first, path,
            f"lacks the header line of run {run['run_id']!r}: the files are from different runs")
    _check_same_epochs(path, records, summary.get("epochs", []))
    run["epochs"] = [record["epoch"] for record in records]
    run["test_accuracy"] = [record["test_accuracy"] for record in records]
    return run


def _check_same_epochs(path: Path, records: list[dict[str, Any]], summary_epochs: list[dict[str, Any]]) -> None:
    """The epoch lines of ``metrics.jsonl`` must be ``summary.json``'s epoch records (one run wrote both)."""
    require(len(records) == len(summary_epochs), path, f"has {len(records)} epoch lines, {SUMMARY} "
            f"{len(summary_epochs)}: the files are from different runs")
    for record, saved in zip(records, summary_epochs):
        same = all(record.get(key) == saved.get(key) for key in ("epoch", "steps", "train_loss", "test_accuracy"))
        require(same, path, f"epoch {record['epoch']} differs from {SUMMARY}'s: the files are from different runs")


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _check_event(line: str, where: str) -> dict[str, Any]:
    """One line of ``metrics.jsonl``, checked: a run header, a step or an epoch, with its numbers."""
    event = parse_json(line, where)
    require(isinstance(event, dict) and event.get("type") in ("run", "step", "epoch"), where,
            "must be an object with 'type' 'run', 'step' or 'epoch'")
    if event["type"] == "run":
        return event
    counter, value = ("step", "loss_avg") if event["type"] == "step" else ("epoch", "test_accuracy")
    require(isinstance(event.get(counter), int) and not isinstance(event[counter], bool) and event[counter] >= 1,
            where, f"'{counter}' must be a number >= 1")
    require(value in event and (event[value] is None or (isinstance(event[value], (int, float))
                                                         and not isinstance(event[value], bool))), where,
            f"'{value}' must be a number or null")
    return event

