"""Under MPI, a signal to any process (``mpiexec`` or one rank) ends the whole job within seconds with
its message, and ranks started with other flags are refused at start-up, naming the rank.

Each test starts a real ``mpiexec -n 2 lamb-edu train --data-parallel`` on MNIST in its own process
group, under a timeout, and kills the group if the job outlives it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MPI_MISSING = importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None
pytestmark = [pytest.mark.mpi, pytest.mark.slow,
              pytest.mark.skipif(MPI_MISSING, reason="mpi4py (and mpiexec) not installed: pip install mpi4py mpich")]

RUN = ["--optimizer", "lamb", "--lr", "0.02", "--train-size", "4096", "--batch-size", "64", "--hidden", "32",
       "--epochs", "200"]
ENDS_WITHIN = 10.0  # seconds from the signal to the end of every process of the job


def mnist_dir() -> str:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the directory with the four IDX files")
    return directory


def train(*args: str) -> list[str]:
    return [sys.executable, "-m", "lamb_edu", "train", *args]


def start(command: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                            cwd=REPO, start_new_session=True)


def finish(job: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """The job's exit code and stderr; kills its whole process group (and fails) if it outlives ``timeout``."""
    try:
        _, stderr = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        pytest.fail(f"the job was still running {timeout} s later (a rank hangs)")
    return job.returncode, stderr.replace("\r", "\n")


def group_is_gone(job: subprocess.Popen) -> bool:
    try:
        os.killpg(job.pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until_training(out: Path, job: subprocess.Popen) -> None:
    """Until rank 0 has logged a step (every rank is then inside the training loop)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and metrics.stat().st_size > 0:
            return
        time.sleep(0.1)
    pytest.fail("the job did not start training within 60 s")


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("target", ["mpiexec", "rank"])
def test_a_signal_to_any_process_ends_the_job_in_seconds(target, signum, code, tmp_path):
    mnist_dir()
    out = tmp_path / "run"
    job = start(["mpiexec", "-n", "2", *train("--data-parallel", *RUN, "--out", str(out))])
    wait_until_training(out, job)
    if target == "mpiexec":
        job.send_signal(signum)
    else:
        pids = [pid for pid in subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
                if int(pid) != job.pid]
        assert len(pids) == 2, pids  # the two ranks (mpiexec's proxy names no run folder)
        os.kill(int(pids[-1]), signum)
    signalled = time.monotonic()
    returncode, stderr = finish(job, timeout=60)
    assert time.monotonic() - signalled < ENDS_WITHIN
    assert returncode == code, stderr[-2000:]
    name = signal.Signals(signum).name
    assert f"received {name}: ending every rank of the job" in stderr
    time.sleep(0.5)
    assert group_is_gone(job)  # no rank left behind


@pytest.mark.parametrize("flags, message", [
    (["--train-size", "4096"], "argument --data-parallel: this is one of 2 processes started by mpiexec"),
    (["--data-parallel", "--shard-optimizer"], "was started with other settings than rank 0"),
    (["--data-parallel", "--bucket-mb", "1"], "was started with other settings than rank 0"),
    (["--shard-optimizer"], "argument --shard-optimizer: needs --data-parallel"),
], ids=["no-data-parallel", "shard-optimizer", "bucket-mb", "shard-optimizer-alone"])
@pytest.mark.slow
def test_ranks_started_with_other_flags_are_refused_at_start(flags, message, tmp_path):
    mnist_dir()
    out = tmp_path / "run"
    common = ["--optimizer", "lamb", "--train-size", "4096", "--batch-size", "64", "--hidden", "32", "--epochs", "1",
              "--out", str(out)]
    other = [flag for flag in flags if flag not in ("--train-size", "4096")]
    job = start(["mpiexec", "-n", "1", *train("--data-parallel", *common), ":", "-n", "1", *train(*other, *common)])
    returncode, stderr = finish(job, timeout=60)
    assert returncode == 2, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lamb-edu train: error: rank 1 of 2: "), lines
    assert message in lines[0]
    assert not out.exists()  # refused before rank 0 made the folder
