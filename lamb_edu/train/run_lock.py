"""One writer per run folder: ``RunLock``, an exclusive lock file holding the writer's pid and host.

``RunLock(folder)`` creates ``folder/.lamb-edu.lock`` with ``O_CREAT | O_EXCL`` (the kernel lets exactly
one process create it) and writes ``{"pid": ..., "host": ...}`` into it. A second writer finds it and is
refused with ``RunFolderBusy`` naming the process; a lock whose process is gone (same host, no such pid:
it was killed) is stale, and is taken over. Two processes that find the same stale lock take turns
(an ``flock`` on the folder itself): each looks again once it has its turn, so the second finds the
first's new lock instead of deleting it. Leaving the ``with`` block removes the file, if it is still
this process's. ``lamb-edu train``, ``train --resume`` and ``reproduce`` hold it while they write.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # not POSIX: no turns, the small race of two takeovers at once remains
    fcntl = None

__all__ = ["LOCK_FILE", "RunLock", "RunFolderBusy", "folder_state"]

LOCK_FILE = ".lamb-edu.lock"
_UNWRITTEN_GRACE_S = 10.0  # a lock file still empty after this long belongs to a writer killed while creating it


class RunFolderBusy(ValueError):
    """Another live process holds the folder's lock (the message names it and the lock file)."""


class RunLock:
    """``with RunLock(folder):`` — this process is the folder's only writer until the block ends."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        """Take the lock (creating the folder), taking over a stale one; RunFolderBusy if a live process has it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        for _ in range(3):  # a stale lock is removed, then the creation is tried again
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                with _turn(self.folder):  # one takeover at a time: the holder is read again inside
                    self._remove_if_stale()
                continue
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(me)
            self.held = True
            return
        raise RunFolderBusy(f"{self.folder} is in use: could not take {self.path}")

    def release(self) -> None:
        """Remove the lock file if this process still holds it."""
        if self.held and _holder(self.path) == {"pid": os.getpid(), "host": socket.gethostname()}:
            self.path.unlink(missing_ok=True)
        self.held = False

    def _remove_if_stale(self) -> None:
        holder = _holder(self.path)
        if holder is None:  # vanished, or being written: stale only once old
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return
            if age > _UNWRITTEN_GRACE_S:
                self.path.unlink(missing_ok=True)
                return
            raise RunFolderBusy(f"{self.folder} is in use by another process (its lock {self.path} is being written)")
        if holder["host"] == socket.gethostname() and not _alive(holder["pid"]):
            self.path.unlink(missing_ok=True)  # its writer was killed: the folder is free
            return
        where = "this machine" if holder["host"] == socket.gethostname() else holder["host"]
        raise RunFolderBusy(f"{self.folder} is in use by process {holder['pid']} on {where} (its lock is {self.path}; "
                            "wait for it to end, or delete the lock if that process is gone)")

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


@contextmanager
def _turn(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (the directory itself: no extra file) while the block runs."""
    if fcntl is None:
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield
    finally:
        os.close(descriptor)


def _holder(path: Path) -> dict[str, Any] | None:
    """The pid and host in a lock file; None when it is missing, empty or unreadable."""
    try:
        with open(path, "rb") as handle:
            holder = json.loads(handle.read(4096).decode("utf-8"))  # a lock file is a line: read no more
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    valid = (isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder["pid"] > 0
             and isinstance(holder.get("host"), str))
    return {"pid": holder["pid"], "host": holder["host"]} if valid else None


def _alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OverflowError:
        return False
    return True


def folder_state(folder: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """What ``folder`` holds, file by file (name, size, modification time in ns; the lock file left out).

    A process that read a run folder before it could take its lock compares this after taking it: a
    different state means another writer finished in between, and what was read is out of date.
    """
    path = Path(folder)
    if not path.is_dir():
        return ()
    entries = []
    for entry in sorted(path.iterdir()):
        if entry.name != LOCK_FILE and entry.is_file():
            stat = entry.stat()
            entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)
