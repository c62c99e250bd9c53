"""The folder of one ``lamb-edu train`` run, and how a reader tells a finished run from any other.

A run's folder holds only that run. ``summary.json`` is written first with ``"status": "running"``,
rewritten ``"interrupted"`` (with the step a checkpoint holds) on Ctrl-C, and rewritten
``"finished"`` last, after ``metrics.jsonl``, ``trust.npz`` and ``curves.png`` are complete; each
write is atomic. A folder that is not empty is refused unless ``--overwrite`` (which deletes the
earlier run's files) or ``--resume``. ``read_run`` checks a folder before ``lamb-edu plot`` draws it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from lamb_edu.cli.values import CommandError
from lamb_edu.train.checkpoint import CHECKPOINT_JSON, CHECKPOINT_NPZ
from lamb_edu.train.files import RunFileError, read_json, require, write_atomically, write_json
from lamb_edu.train.history import json_safe

__all__ = ["RUN_FILES", "prepare_out_dir", "write_summary", "MetricsLog", "read_summary", "read_run"]

SUMMARY, METRICS = "summary.json", "metrics.jsonl"
RUN_FILES = (SUMMARY, METRICS, "trust.npz", "curves.png", CHECKPOINT_JSON, CHECKPOINT_NPZ)
STATUSES = ("running", "interrupted", "finished")


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Make ``out`` empty and ready, or refuse (exit 2): an earlier run must never mix with this one."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"argument --out: {out} exists and is not a directory", 2)
    present = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise CommandError(f"argument --out: {out} is not empty ({', '.join(present[:4])}"
                           f"{', …' if len(present) > 4 else ''}); pass --overwrite to replace it, "
                           f"--resume {out} to continue the run in it, or choose another --out", 2)
    foreign = [name for name in present if name not in RUN_FILES and not name.endswith(".part")]
    if foreign:
        raise CommandError(f"argument --overwrite: {out} holds files no run writes ({', '.join(foreign[:4])}); "
                           "not deleting them: choose another --out", 2)
    for name in present:
        (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)


def write_summary(out: Path, status: str, document: dict[str, Any]) -> None:
    """(Re)write ``summary.json`` atomically with ``status`` first."""
    write_json(out / SUMMARY, {"status": status, **document}, indent=2)


class MetricsLog:
    """``metrics.jsonl``: one JSON line per logged step and per epoch, flushed as written."""

    def __init__(self, path: Path, resume_at: dict[str, int] | None = None) -> None:
        """Open for a new run, or (``resume_at`` = the checkpoint's step and epoch) keep what came before it."""
        if resume_at is not None and path.is_file():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines() if _before(line, resume_at)]
            text = "".join(line + "\n" for line in kept)
            write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
        self._file: TextIO = open(path, "a" if resume_at is not None else "w", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(json_safe(event)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _before(line: str, resume_at: dict[str, int]) -> bool:
    """True for a line a resumed run will not write again (up to the checkpoint); a torn last line is dropped."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    if event.get("type") == "epoch":
        return event.get("epoch", 0) <= resume_at["epoch"]
    return event.get("step", 0) <= resume_at["step"]


def read_summary(directory: Path) -> dict[str, Any]:
    """``summary.json`` of a run folder, checked for its shape (RunFileError naming the file)."""
    path = directory / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a lamb-edu run directory: {path} is missing")
    summary = read_json(path)
    require(isinstance(summary, dict), path, "must hold a JSON object")
    require(summary.get("status", "finished") in STATUSES, path, f"'status' must be one of {', '.join(STATUSES)}")
    require(isinstance(summary.get("settings"), dict), path, "lacks its 'settings' object")
    require(isinstance(summary["settings"].get("optimizer"), str), path, "settings.optimizer must be a name")
    diverged = summary.get("diverged")
    require(diverged in (None, False) or (isinstance(diverged, int) and diverged >= 1), path,
            f"'diverged' must be null or a step number, got {diverged!r}")
    return summary


def read_run(directory: Path) -> dict[str, Any]:
    """Check a finished run's two files (shape, keys, that they belong together) and return its summary."""
    summary = read_summary(directory)
    if summary.get("status", "finished") != "finished":
        raise RunFileError(f"{directory} holds an unfinished run (status {summary['status']!r}): "
                           f"finish it with `lamb-edu train --resume {directory}` first")
    path = directory / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a lamb-edu run directory: {path} is missing")
    epochs = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            epochs += _check_event(line, f"{path}, line {number}")
    require(epochs == len(summary.get("epochs", [])), path,
            f"has {epochs} epoch lines, {SUMMARY} {len(summary.get('epochs', []))}: the files are from different runs")
    return summary


def _check_event(line: str, where: str) -> int:
    """Check one line of ``metrics.jsonl``; 1 for an epoch line, 0 for a step line."""
    try:
        event = json.loads(line)
    except ValueError as error:
        raise RunFileError(f"{where}: not valid JSON ({error})") from None
    require(isinstance(event, dict) and event.get("type") in ("step", "epoch"), where,
            "must be an object with 'type' 'step' or 'epoch'")
    counter, value = ("step", "loss_avg") if event["type"] == "step" else ("epoch", "test_accuracy")
    require(isinstance(event.get(counter), int) and event[counter] >= 1, where, f"'{counter}' must be a number >= 1")
    require(value in event and (event[value] is None or isinstance(event[value], (int, float))), where,
            f"'{value}' must be a number or null")
    return int(event["type"] == "epoch")
