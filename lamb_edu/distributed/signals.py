"""Any signal to any rank ends the whole MPI job within seconds, with a message naming the rank and signal.

Python runs a signal handler in the main thread between two bytecodes, so a rank blocked inside a
collective (waiting for a rank that stopped) would never run it: Ctrl-C to ``mpiexec`` (which passes
it on to every rank) once left rank 0 finishing its run while rank 1 waited forever in an
all-reduce. Here the C-level handler also writes the signal's number to a pipe
(``signal.set_wakeup_fd``); a watcher thread blocked on that pipe wakes at once, even while the
main thread is inside MPI, prints the message and calls ``MPI_Abort``, which ends every rank.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

__all__ = ["end_job_on_signals", "ENDING_SIGNALS"]

ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_ended = threading.Lock()


def end_job_on_signals(rank: int, size: int, abort: Callable[[int], None]) -> None:
    """From now on SIGINT, SIGTERM or SIGHUP to this rank prints one line and calls ``abort(128 + signal)``.

    Must be called from the main thread (Python's rule for ``signal.signal``).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("end_job_on_signals must be called from the main thread")
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def end(signum: int) -> None:
        if not _ended.acquire(blocking=False):
            return  # the other path (thread or handler) is already ending the job
        name = signal.Signals(signum).name
        sys.stderr.write(f"lamb-edu: rank {rank} of {size} received {name}: ending every rank of the job\n")
        sys.stderr.flush()
        abort(128 + signum)  # (MPIWorld.abort waits a moment first, so that mpiexec forwards that line)

    def watch() -> None:
        while True:
            received = os.read(read_end, 1)
            if received and received[0] in {int(s) for s in ENDING_SIGNALS}:
                end(received[0])

    threading.Thread(target=watch, name="lamb-edu-signal-watch", daemon=True).start()
    for ending in ENDING_SIGNALS:
        signal.signal(ending, lambda signum, frame: end(signum))
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
