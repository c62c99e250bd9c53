"""The world of processes a data-parallel run is made of: ``rank`` (who am I) and ``size`` (how many).

Under ``mpiexec`` the world is MPI's ``COMM_WORLD`` (through mpi4py, imported only then); anywhere
else it is a one-process world with the same methods, whose collectives do nothing (a sum over one
process is that process's value). So code written for N processes runs unchanged on one.

Only a handful of collectives are needed, all on contiguous arrays:

- ``allreduce_sum(buffer)``: every rank ends with the element-wise sum over ranks;
- ``broadcast(buffer)``: every rank ends with rank 0's values;
- ``allgather(full)``: ``full`` is cut into ``size`` equal parts; part r, written by rank r, is
  copied into ``full`` on every rank;
- ``start_allreduce_sum(buffer)``, ``start_reduce_scatter_sum(send, receive, counts)`` and
  ``start_allgather(buffer, counts)``: the same without waiting (MPI's ``Iallreduce``,
  ``Ireduce_scatter``, ``Iallgatherv``); they return a ``Pending`` whose ``wait()`` finishes it, so
  gradients travel while backward computes the next ones.

Arrays on the GPU are staged through host memory (an MPI library need not read device memory).
A rank that dies must not leave the others waiting in a collective forever: ``MPIWorld`` installs
an exception hook that prints the rank's error and calls ``MPI_Abort``, which ends every rank. A
signal (SIGINT, SIGTERM, SIGHUP) to any rank does the same, even while that rank waits inside MPI
(``signals.end_job_on_signals``): ``mpiexec`` passes Ctrl-C on to every rank.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

from lamb_edu import backend
from lamb_edu.distributed.signals import end_job_on_signals

np = backend.np  # host buffers for MPI

__all__ = ["World", "LocalWorld", "MPIWorld", "Pending", "get_world", "launched_by_mpi", "mpi_job_size",
           "MPI_ENVIRONMENT_VARIABLES"]

# Set by the launchers of MPICH (hydra), Open MPI, PMIx-based launchers and Intel MPI for every rank.
ABORT_GRACE_SECONDS = 0.2  # between a failing rank's last line and MPI_Abort
MPI_ENVIRONMENT_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class Pending:
    """A collective in flight: ``test()`` lets MPI move it on (True when done), ``wait()`` finishes it.

    ``done`` (a no-argument function) runs once, after it finishes: copying staged host memory back.
    """

    def __init__(self, request: Any = None, done: Any = None, keep: Any = None) -> None:
        self.request, self._done, self.finished = request, done, False
        self._keep = keep  # a staged send buffer must live until the transfer ends

    def test(self) -> bool:
        """Let MPI progress the transfer; True once it is complete (it still needs ``wait()``)."""
        return self.request is None or bool(self.request.Test())

    def wait(self) -> None:
        """Block until the collective is complete on this rank; idempotent."""
        if self.finished:
            return
        if self.request is not None:
            self.request.Wait()
        if self._done is not None:
            self._done()
        self.finished = True


class World:
    """The interface both worlds share; ``rank`` in ``[0, size)``, rank 0 is the one that writes outputs."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # ranks of this world on this machine (they share its cores)

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    def allreduce_sum(self, buffer: Any) -> None:
        """In place: ``buffer`` ← the sum of ``buffer`` over all ranks."""

    def broadcast(self, buffer: Any, root: int = 0) -> None:
        """In place: ``buffer`` ← rank ``root``'s ``buffer``."""

    def allgather(self, full: Any) -> None:
        """In place: part r of ``full`` (of ``size`` equal parts) ← rank r's part r."""

    def start_allreduce_sum(self, buffer: Any) -> Pending:
        """``allreduce_sum`` without waiting: ``buffer`` must not be touched until ``wait()``."""
        self.allreduce_sum(buffer)
        return Pending()

    def start_reduce_scatter_sum(self, send: Any, receive: Any, counts: list[int]) -> Pending:
        """``receive`` ← rank r's part of the sum over ranks of ``send``, cut in parts of ``counts`` (r = this rank).

        ``send`` holds ``sum(counts)`` values, ``receive`` ``counts[rank]``; not waited for.
        """
        start = sum(counts[: self.rank])
        receive[...] = send[start : start + counts[self.rank]]
        return Pending()

    def start_allgather(self, buffer: Any, counts: list[int]) -> Pending:
        """``buffer`` is cut into parts of ``counts`` (one per rank, in rank order); part r, written by rank r,
        is copied into ``buffer`` on every rank, without waiting (MPI's ``Iallgatherv``)."""
        return Pending()

    def poke(self) -> None:
        """Let MPI move the collectives in flight on (nothing to do in a world of one)."""

    def barrier(self) -> None:
        """Wait until every rank has arrived here."""

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now with exit code ``code``."""
        raise SystemExit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class LocalWorld(World):
    """A world of one process: every collective is the identity."""


class MPIWorld(World):
    """``COMM_WORLD`` of MPI. ``MPIWorld()`` imports mpi4py, which initialises MPI."""

    def __init__(self, abort_on_error: bool = True) -> None:
        try:
            from mpi4py import MPI  # noqa: PLC0415  (an optional dependency, needed only under mpiexec)
        except ImportError as error:
            raise ImportError(f"running under mpiexec needs mpi4py ({error}); "
                              "install it with `pip install mpi4py mpich`") from None
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        here = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks that share this machine's memory
        self.local_size = here.Get_size()
        here.Free()
        if abort_on_error:
            self._install_abort_hook()
            if self.size > 1:
                end_job_on_signals(self.rank, self.size, self.abort)

    def _install_abort_hook(self) -> None:
        # An uncaught exception on one rank would leave the others blocked in their next collective:
        # print it, tagged with the rank, and take the whole job down.
        def hook(kind: type, error: BaseException, trace: Any) -> None:
            lines = traceback.format_exception(kind, error, trace)
            sys.stderr.write(f"rank {self.rank} of {self.size} failed:\n" + "".join(lines))
            sys.stderr.flush()
            self.abort(1)

        sys.excepthook = hook

    def _on_host(self, buffer: Any) -> Any:
        return buffer if isinstance(buffer, np.ndarray) else backend.to_numpy(buffer)

    def _back(self, host: Any, buffer: Any) -> None:
        if host is not buffer:
            buffer[...] = backend.asarray(host)

    def allreduce_sum(self, buffer: Any) -> None:
        host = self._on_host(buffer)
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        self._back(host, buffer)

    def broadcast(self, buffer: Any, root: int = 0) -> None:
        host = self._on_host(buffer)
        self.comm.Bcast(host, root=root)
        self._back(host, buffer)

    def allgather(self, full: Any) -> None:
        host = self._on_host(full)
        self.comm.Allgather(self._mpi.IN_PLACE, host)
        self._back(host, full)

    def start_allreduce_sum(self, buffer: Any) -> Pending:
        host = self._on_host(buffer)
        request = self.comm.Iallreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        return Pending(request, None if host is buffer else lambda: self._back(host, buffer))

    def start_reduce_scatter_sum(self, send: Any, receive: Any, counts: list[int]) -> Pending:
        host_send, host_receive = self._on_host(send), self._on_host(receive)
        request = self.comm.Ireduce_scatter(host_send, host_receive, list(counts), op=self._mpi.SUM)
        return Pending(request, None if host_receive is receive else lambda: self._back(host_receive, receive),
                       keep=host_send)

    def start_allgather(self, buffer: Any, counts: list[int]) -> Pending:
        host = self._on_host(buffer)
        displacements = [sum(counts[:rank]) for rank in range(len(counts))]
        request = self.comm.Iallgatherv(self._mpi.IN_PLACE, [host, (list(counts), displacements)])
        return Pending(request, None if host is buffer else lambda: self._back(host, buffer))

    def poke(self) -> None:
        # MPICH and Open MPI advance non-blocking collectives only inside MPI calls; a probe for a
        # point-to-point message (none is ever sent here) runs the progress engine, touching no request.
        self.comm.Iprobe(self._mpi.ANY_SOURCE, self._mpi.ANY_TAG)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        # the abort tears mpiexec's output streams down with the job: give it time to forward the
        # line this rank just wrote (without the pause it was lost about one time in thirty)
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(code)


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (``mpiexec``/``mpirun``/``srun``)."""
    return any(name in os.environ for name in MPI_ENVIRONMENT_VARIABLES)


def mpi_job_size() -> int:
    """How many ranks an MPI launcher started, read from its environment without starting MPI; 1 outside one.

    Counted only when the launcher can be reached (MPICH's ``PMI_FD`` or ``PMI_PORT`` with ``PMI_SIZE``,
    Open MPI's ``OMPI_COMM_WORLD_SIZE``): a stray ``PMI_SIZE`` alone starts nothing.
    """
    sizes = [os.environ.get("OMPI_COMM_WORLD_SIZE", "")]
    if "PMI_FD" in os.environ or "PMI_PORT" in os.environ:
        sizes.append(os.environ.get("PMI_SIZE", ""))
    return max([int(size) for size in sizes if size.isdigit()] or [1])


_world: World | None = None


def get_world() -> World:
    """The world of this process, made once: an ``MPIWorld`` under ``mpiexec``, else a ``LocalWorld``.

    ``LAMB_EDU_MPI=1`` forces MPI (for launchers that set none of ``MPI_ENVIRONMENT_VARIABLES``) and
    ``LAMB_EDU_MPI=0`` forbids it.
    """
    global _world
    if _world is None:
        forced = os.environ.get("LAMB_EDU_MPI", "")
        use_mpi = forced == "1" or (forced != "0" and launched_by_mpi())
        _world = MPIWorld() if use_mpi else LocalWorld()
    return _world
