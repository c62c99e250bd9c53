"""Files a run writes and reads: written atomically, read with an error that names the file.

``write_atomically`` writes to a temporary name beside the target and renames it when complete, so a
reader sees the old file or the whole new one, never half of one. ``read_json`` turns a missing,
unreadable or malformed file into ``RunFileError`` (a ValueError) whose message names it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable

from lamb_edu.train.history import json_safe

__all__ = ["RunFileError", "write_atomically", "write_json", "read_json", "require"]


class RunFileError(ValueError):
    """A file of a run or checkpoint is missing, damaged or not what it should be (the message names it)."""


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


def write_json(path: str | os.PathLike, value: Any, indent: int | None = None, sort_keys: bool = False) -> None:
    """Write ``value`` as strict JSON (NaN and inf become null), atomically."""
    text = json.dumps(json_safe(value), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; RunFileError naming the file when it is missing, unreadable or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path} cannot be read: {error}") from None
    except ValueError as error:
        raise RunFileError(f"{path} is not valid JSON ({error})") from None


def require(condition: bool, path: str | os.PathLike, problem: str) -> None:
    """Raise RunFileError('<path>: <problem>') unless ``condition`` holds."""
    if not condition:
        raise RunFileError(f"{path}: {problem}")
