"""The checkpoint file: one ``.npz`` holding the arrays and the JSON document, written as one atomic unit.

A checkpoint is one file, so a kill at any moment leaves the previous checkpoint or the new one,
never a pair from two steps: the new file is written beside the old one, flushed to the disk and
renamed over it (``files.write_atomically``); the old one is gone only once the new one is complete.
The document (position, history, optimizer class, model, scheduler) travels inside it as the UTF-8
bytes of its JSON text, in the member ``checkpoint``.

Reading bounds what it reads before it allocates: the zip's table of contents is checked first
(every member by name, the size its header declares), then each array's ``.npy`` header (dtype and
shape against what the model allows), and only then is anything decompressed, never more than the
header declared. A crafted file is refused with a ``RunFileError`` naming it, at the cost of a few
kilobytes.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.train.files import RunFileError, parse_json, require, write_atomically

np = backend.np  # checkpoint files hold host arrays

__all__ = ["DOCUMENT_MEMBER", "write_checkpoint_file", "read_checkpoint_document", "read_checkpoint_arrays",
           "MemberRule"]

DOCUMENT_MEMBER = "checkpoint"
DOCUMENT_LIMIT = 256 * 2**20  # bytes of JSON: a history of millions of steps, not a zip bomb
_HEADER_LIMIT = 64 * 2**10  # an .npy header is a few hundred bytes

# For a member name: None (not allowed), or a check of its dtype and shape returning a problem or None.
MemberRule = Callable[[str], "Callable[[Any, tuple[int, ...]], str | None] | None"]


def write_checkpoint_file(path: Path, arrays: dict[str, Any], document: dict[str, Any]) -> None:
    """Write ``arrays`` and ``document`` (strict JSON) into the one file ``path``, atomically."""
    text = json.dumps(document, allow_nan=False).encode("utf-8")
    members = {**arrays, DOCUMENT_MEMBER: np.frombuffer(text, dtype=np.uint8)}
    write_atomically(path, lambda handle: np.savez(handle, **members))


def read_checkpoint_document(path: Path) -> dict[str, Any] | None:
    """The JSON document of the checkpoint ``path`` (None in a file of the older two-file format).

    Reads the one member, after checking its declared size; RunFileError naming ``path`` otherwise.
    """
    raw = _reading(path, lambda archive: _read_member(path, archive, DOCUMENT_MEMBER, _no_rule)
                   if f"{DOCUMENT_MEMBER}.npy" in archive.namelist() else None)
    if raw is None:
        return None
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: its document is not UTF-8 text") from None
    return parse_json(text, f"{path} (its document)")


def read_checkpoint_arrays(path: Path, rule: MemberRule) -> dict[str, Any]:
    """The arrays of the checkpoint ``path``, every member allowed by ``rule`` (its name, dtype and shape).

    ``rule(name)`` is consulted on the zip's table of contents and on each ``.npy`` header, before anything
    is decompressed. RunFileError naming ``path`` for anything wrong.
    """
    def read(archive: zipfile.ZipFile) -> dict[str, Any]:
        names = _checked_contents(path, archive, rule)
        return {name: _read_member(path, archive, name, rule) for name in names if name != DOCUMENT_MEMBER}

    return _reading(path, read)


def _reading(path: Path, read: Callable[[zipfile.ZipFile], Any]) -> Any:
    """``read(archive)`` of the zip ``path``; any failure of the file becomes RunFileError naming it."""
    try:
        with zipfile.ZipFile(path) as archive:
            return read(archive)
    except RunFileError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, KeyError, RuntimeError) as error:
        raise RunFileError(f"{path} is truncated or corrupt ({type(error).__name__}: {error})") from None


def _no_rule(name: str) -> None:
    return None


def _checked_contents(path: Path, archive: zipfile.ZipFile, rule: MemberRule) -> list[str]:
    """The member names (without ``.npy``), each allowed by ``rule`` and of a sane declared size."""
    names = []
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        require(info.filename.endswith(".npy") and name not in names, path, f"holds an unexpected member "
                                                                            f"{info.filename!r}")
        require(name == DOCUMENT_MEMBER or rule(name) is not None, path, f"holds an unexpected member {name!r}")
        names.append(name)
    return names


def _read_member(path: Path, archive: zipfile.ZipFile, name: str, rule: MemberRule) -> Any:
    """One array: its header checked against ``rule`` first, then its data (never more than the header says)."""
    with archive.open(f"{name}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        require(version in ((1, 0), (2, 0), (3, 0)), path, f"{name}: not an .npy array")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream, max_header_size=_HEADER_LIMIT)
        require(not dtype.hasobject, path, f"{name}: holds Python objects (a checkpoint holds numbers only)")
        require(archive.getinfo(f"{name}.npy").file_size <= DOCUMENT_LIMIT + _HEADER_LIMIT, path,
                f"{name}: declares more bytes than a run writes")
        check = _document_check if name == DOCUMENT_MEMBER else rule(name)
        problem = check(dtype, tuple(shape))
        require(problem is None, path, f"{name}: {problem}")
        count = int(np.prod(shape, dtype=np.int64))
        data = stream.read(count * dtype.itemsize + 1)
        require(len(data) == count * dtype.itemsize, path, f"{name}: holds {len(data)} bytes, its header says "
                                                           f"{count * dtype.itemsize}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def _document_check(dtype: Any, shape: tuple[int, ...]) -> str | None:
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > DOCUMENT_LIMIT:
        return f"must be at most {DOCUMENT_LIMIT} bytes of text, got {dtype} {shape}"
    return None
