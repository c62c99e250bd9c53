"""The benchmark harness: timing, one subprocess per measurement, idle waits, the table, RESULTS.md.

``measure`` runs every (task, library) in its own subprocess (``run_worker``: the benchmark script
again with ``--worker``), libraries alternating in order from round to round, and keeps the median
over rounds. ``table`` turns the medians into the Markdown table of RESULTS.md for the CPU and the
GPU alike; ``write_results`` replaces one section of RESULTS.md between its markers.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_TITLES = {"lamb_edu": "lamb-edu", "torch": "PyTorch", "timm": "timm Lamb"}

WAITS = {"measurements": 0, "gave_up": 0, "seconds": 0.0}
TOTAL_WAIT = 1800.0  # after this many seconds of waiting in one run, measure without waiting
IDLE_LIMIT = [0.15]  # --idle: the busy share of the CPUs above which a measurement waits

Task = tuple[str, int, int]  # (name, timed steps, warm-up steps)


# ----------------------------------------------------------------------------------- timing (worker side)
def time_it(function: Callable[[], object], steps: int, warmup: int) -> float:
    """Median seconds of ``function`` over ``steps`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_epoch(step: Callable, batches: list) -> float:
    """Seconds for one pass of ``step`` over ``batches``, after one untimed warm-up step."""
    step(*batches[0])
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def gpu_time(function: Callable[[], object], synchronize: Callable[[], object], steps: int, warmup: int) -> float:
    """Median seconds of ``function`` with the device synchronised around each call."""
    def timed():
        function()
        synchronize()
    synchronize()
    return time_it(timed, steps, warmup)


# ----------------------------------------------------------------------------------- subprocesses (parent side)
def busy_fraction(seconds: float = 0.5) -> float:
    """The share of all CPUs busy over ``seconds`` (from /proc/stat; 0 where it cannot be read)."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total_before, idle_before = sample()
        time.sleep(seconds)
        total_after, idle_after = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle_after - idle_before) / max(total_after - total_before, 1)


def wait_until_idle(limit: float, max_wait: float = 300.0) -> None:
    """Before a measurement, wait (up to ``max_wait`` s) until other programs leave the CPUs idle.

    Threads that spin while another program holds a core make timings meaningless (PyTorch's
    OpenMP threads and OpenBLAS's most of all), so on a shared machine this keeps runs comparable.
    """
    WAITS["measurements"] += 1
    started = time.monotonic()
    deadline = started + min(max_wait, max(0.0, TOTAL_WAIT - WAITS["seconds"]))
    while busy_fraction() > limit:
        if time.monotonic() > deadline:
            WAITS["gave_up"] += 1
            break
    WAITS["seconds"] += time.monotonic() - started


def run_worker(script: str, library: str, task: str, steps: int, warmup: int, threads: int,
               gpu: bool = False) -> dict[str, float]:
    """Run ``script --worker`` for one measurement in a fresh process with ``threads`` threads; its JSON line."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LAMB_EDU_NUM_THREADS"):
        env[variable] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["LAMB_EDU_BACKEND"] = "numpy"
    if IDLE_LIMIT[0] < 1.0:
        wait_until_idle(IDLE_LIMIT[0])
    command = [sys.executable, script, "--worker", "--library", library, "--task", task, "--steps", str(steps),
               "--warmup", str(warmup), "--threads", str(threads)] + (["--gpu"] if gpu else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{library} {task} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(script: str, tasks: list[Task], libraries_of: Callable[[str], list[str]], rounds: int, threads: int,
            gpu: bool = False, floors: Callable[[], dict[str, float]] | None = None,
            ) -> tuple[dict[tuple[str, str], float], list[dict[str, float]]]:
    """Median seconds per (task, library) over ``rounds``, the libraries alternating; and each round's floors."""
    times: dict[tuple[str, str], list[float]] = {}
    floor_runs = []
    for round_index in range(rounds):
        if floors is not None:
            floor_runs.append(floors())
        for name, steps, warmup in tasks:
            libraries = libraries_of(name)
            for library in libraries if round_index % 2 == 0 else list(reversed(libraries)):
                seconds = run_worker(script, library, name, steps, warmup, threads, gpu)["seconds"]
                times.setdefault((name, library), []).append(seconds)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    return {key: statistics.median(values) for key, values in times.items()}, floor_runs


# ----------------------------------------------------------------------------------- reporting
def version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def table(tasks: list[Task], medians: dict[tuple[str, str], float], libraries: list[str],
          describe: Callable[[str, float], tuple[str, str, str]], device: str = "") -> str:
    """The Markdown table: per task, each library's ms, lamb-edu's ratio to each other, its rate and share of floor.

    ``describe(task, lamb_edu_seconds)`` gives (label, rate, share of the floor); a library that did
    not run a task shows "-". ``device`` is added to the column titles ("CuPy", "CUDA").
    """
    others = [library for library in libraries if library != "lamb_edu"]
    titles = [f"{LIBRARY_TITLES[library]}{f' ({device})' if device else ''} ms" for library in libraries]
    header = ["work", *titles, *(f"lamb-edu / {LIBRARY_TITLES[other]}" for other in others), "lamb-edu rate",
              "of floor"]
    rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, _, _ in tasks:
        ours = medians[(name, "lamb_edu")]
        label, rate, share = describe(name, ours)
        cells = [f"{medians[(name, library)] * 1e3:.2f}" if (name, library) in medians else "-"
                 for library in libraries]
        ratios = [f"{ours / medians[(name, other)]:.2f}x" if (name, other) in medians else "-" for other in others]
        rows.append("| " + " | ".join([label, *cells, *ratios, rate, share]) + " |")
    return "\n".join(rows)


def write_results(path: Path, text: str, section: str = "cpu") -> None:
    """Replace one section of RESULTS.md (between its markers), keeping the rest of the file."""
    begin, end = f"<!-- {section}-results:begin -->", f"<!-- {section}-results:end -->"
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        title = {"cpu": "CPU: lamb-edu against PyTorch", "cnn": "CPU: the article's CNN, one epoch",
                 "gpu": "GPU: lamb-edu on CuPy against PyTorch CUDA"}[section]
        new = old.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(new)
    temporary.replace(path)
