"""Train a study's runs in worker processes: waves of independent runs, found by a dry pass.

A study is a list of *cells*, each a function that asks a ``RunQueue`` for runs and returns them.
What a cell asks for may depend on what it got before: the tuned lr on the grid decides the repeat
runs, the trials decide the report runs, a steps-to-target trial stops where the best one before it
stopped. ``train_in_waves`` finds what can train now with a *dry pass*: every cell runs against the
queue in dry mode, where a run not yet trained comes back as a ``PendingRun`` and reading it raises
``Pending``, which ends that cell's pass. The runs asked for so far are independent of each other;
a ``RunPool`` trains them at once, one per worker, and the queue keeps them. The next pass gets
further, until a pass asks for nothing new. The study then runs for real and finds every run trained,
so it returns exactly what a study trained one run at a time returns.

Each worker is a ``python -m lamb_edu.experiments.run_worker`` process on one thread (BLAS and
lamb-edu's own loops), so two workers use two cores, and a run's numbers do not depend on how many
workers trained the study (a seeded run repeats bit for bit for a given thread count). Workers talk
JSON lines over their standard input and output: the study's data and model, then one request per
run, answered with the run's row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lamb_edu.experiments.batch_run import BatchRun, Pending
from lamb_edu.experiments.batch_sweep import run_from_json

__all__ = ["RunPool", "train_in_waves", "default_workers", "ONE_THREAD"]

# what a worker's environment says so that every library in it computes on one thread
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "LAMB_EDU_NUM_THREADS")}


def default_workers() -> int:
    """One worker per core, at most 4: each holds its own copy of the data and its runs' memory."""
    return max(1, min(os.cpu_count() or 1, 4))


class RunPool:
    """``workers`` worker processes that train runs for one study, described by ``spec`` (plain JSON values).

    ``spec`` holds ``data_dir``, the split sizes (``train_size``, ``validation_size``, ``test_size``,
    ``curve_size``), the MLP's ``hidden`` sizes, ``epochs``, the queue's ``options`` and the study's
    ``optimizers`` (name, label, class_name, rule, grid, options). ``train(requests, on_run)`` trains
    a list of requests (``RunQueue`` records them in dry mode) and calls ``on_run(run)`` as each ends;
    when no run has ended for ``stall_seconds`` (a worker hangs), it ends the workers and raises.
    Use it as a context manager: leaving it ends the workers.
    """

    command = [sys.executable, "-m", "lamb_edu.experiments.run_worker"]  # one worker

    def __init__(self, spec: dict[str, Any], workers: int, stall_seconds: float = 600.0) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not stall_seconds > 0:
            raise ValueError(f"stall_seconds must be a number > 0, got {stall_seconds!r}")
        self.spec, self.size, self.stall_seconds = spec, workers, stall_seconds
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "RunPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start(self) -> None:
        # the workers import this same lamb_edu, even when it is found through a path only this process has
        package_root = str(Path(__file__).resolve().parents[2])
        search_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        environment = {**os.environ, **ONE_THREAD, "PYTHONPATH": search_path}
        for _ in range(self.size - len(self.processes)):
            process = subprocess.Popen(self.command, env=environment,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            process.stdin.write(json.dumps(self.spec) + "\n")
            self.processes.append(process)

    def train(self, requests: Sequence[dict[str, Any]], on_run: Callable[[BatchRun], Any]) -> None:
        """Train every request, each on the first free worker; ``on_run`` is called in this thread, in order
        of completion. RuntimeError, naming the request, if a worker fails."""
        self._start()
        todo, lock, done = deque(requests), threading.Lock(), deque()
        failures: list[str] = []
        ready = threading.Condition(lock)

        def serve(process: subprocess.Popen) -> None:
            while True:
                with lock:
                    if not todo or failures:
                        return
                    request = todo.popleft()
                try:
                    process.stdin.write(json.dumps(request) + "\n")
                    line = process.stdout.readline()
                    if not line:
                        raise ValueError("the worker ended (its message is above)")
                    run = run_from_json(line)
                except (OSError, ValueError, KeyError) as error:
                    with ready:
                        failures.append(f"a worker failed training {request['optimizer']} at batch "
                                        f"{request['batch_size']}, lr {request['lr']:.3g}: {error}")
                        ready.notify()
                    return
                with ready:
                    done.append(run)
                    ready.notify()

        threads = [threading.Thread(target=serve, args=(process,), daemon=True) for process in self.processes]
        for thread in threads:
            thread.start()
        for _ in range(len(requests)):
            with ready:
                while not done and not failures:
                    if not ready.wait(timeout=self.stall_seconds):
                        failures.append(f"no run ended in {self.stall_seconds:g} s: a worker hangs")
                if failures:
                    break
                run = done.popleft()
            on_run(run)
        if failures:
            self.close()  # a worker that hangs is killed, so its thread can end
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(failures[0])

    def close(self) -> None:
        """End the workers (a worker in the middle of a run is killed: that run is simply not kept)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                stream.close()
        self.processes = []


def train_in_waves(cells: Iterable[Callable[[], Any]], queue: Any, pool: RunPool) -> int:
    """Train what ``cells`` ask ``queue`` for in waves on ``pool`` (see the module's note); the number of waves.

    Afterwards every cell finds its runs trained. ``queue`` is a ``RunQueue``: ``dry()`` starts a dry
    pass and ends it with the requests made, ``add(run)`` keeps a trained run.
    """
    cells, waves = list(cells), 0
    while True:
        with queue.dry() as requests:
            for cell in cells:
                try:
                    cell()
                except Pending:
                    pass
        if not requests:
            return waves
        pool.train(list(requests.values()), queue.add)
        waves += 1
