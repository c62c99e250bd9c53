"""Files a run writes and reads: written atomically, read with an error that names the file.

``write_atomically`` writes to a temporary name beside the target, flushes it to the disk and renames it
when complete, so a reader sees the old file or the whole new one, never half of one, even after a
kill or a power cut. ``read_json`` turns a missing, unreadable, malformed or absurdly nested file into
``RunFileError`` (a ValueError) whose message names it. ``TEMPORARY_SUFFIX`` marks the temporary
files, so that a run folder can tell its own leftovers (``.<name>.<pid>.part``) from a user's files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable

from lamb_edu.train.history import json_safe

__all__ = ["RunFileError", "write_atomically", "write_json", "read_json", "parse_json", "require", "temporary_name",
           "is_temporary_of"]

TEMPORARY_SUFFIX = ".part"


class RunFileError(ValueError):
    """A file of a run or checkpoint is missing, damaged or not what it should be (the message names it)."""


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], Any], durable: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``.

    Readers see the old file or the complete new one, never half a file; on any error the
    temporary file is removed and ``path`` is untouched. ``durable`` (the default) also flushes the
    file and the rename to the disk, so that they survive a power cut (about 8 ms a file here);
    a file that can be written again from others (a readable copy) may skip it.
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())  # the data is on the disk before the name points at it
        os.replace(temporary, path)
        if durable:
            _sync_directory(path.parent)  # and the rename too, before the caller goes on
    finally:
        temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Flush a directory's entries to the disk (where the system allows it)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def temporary_name(path: Path) -> Path:
    """The temporary file ``write_atomically`` writes ``path`` to: ``.<name>.<pid>.part`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def is_temporary_of(name: str, target: str) -> bool:
    """True when ``name`` is a temporary file ``write_atomically`` left while writing ``target`` (a killed writer)."""
    prefix, suffix = f".{target}.", TEMPORARY_SUFFIX
    middle = name[len(prefix):-len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
    return middle.isdigit()


def write_json(path: str | os.PathLike, value: Any, indent: int | None = None, sort_keys: bool = False,
               durable: bool = True) -> None:
    """Write ``value`` as strict JSON (NaN and inf become null), atomically (``durable``: flushed to the disk)."""
    text = json.dumps(json_safe(value), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")), durable)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; RunFileError naming the file when it is missing, unreadable or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path} cannot be read: {error}") from None
    return parse_json(text, path)


def parse_json(text: str, where: str | os.PathLike) -> Any:
    """The JSON value of ``text``; RunFileError naming ``where`` when it is malformed or nested too deeply."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise RunFileError(f"{where} is not valid JSON (nested too deeply)") from None
    except ValueError as error:
        raise RunFileError(f"{where} is not valid JSON ({error})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (lamb-edu writes null for a number that is not finite)")


def require(condition: bool, path: str | os.PathLike, problem: str) -> None:
    """Raise RunFileError('<path>: <problem>') unless ``condition`` holds."""
    if not condition:
        raise RunFileError(f"{path}: {problem}")
