"""``host_memory``: a step that allocates and frees its activations reuses the memory instead of page-faulting
it back in from the kernel each time (measured in fresh processes, with and without it); between two runs of a
study that memory is given back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamb_edu import nn, optim
from lamb_edu.experiments.batch_sweep import RunQueue, study_data
from tests.test_large_batch import synthetic_mnist

ROOT = Path(__file__).resolve().parent.parent
STEPS = """
import resource
import numpy as np
import lamb_edu

def step():  # activations of a step: 30 arrays, 140 MB, all freed at its end
    kept = [np.ones(size, np.float32) for size in [500_000, 2_000_000, 1_000_000] * 10]
    del kept

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(keep: str) -> int:
    env = dict(os.environ, LAMB_EDU_KEEP_FREED_MEMORY=keep, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True, text=True, timeout=120,
                            check=True)
    return int(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_activations_are_reused_not_faulted_back_in():
    kept, returned = page_faults("1"), page_faults("0")
    assert returned > 5 * 140e6 / 4096 / 4, returned  # without it: most of the 5 x 140 MB comes back as new pages
    assert kept < returned / 20, (kept, returned)


RELEASE = """
import numpy as np
import lamb_edu
from lamb_edu import host_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

kept = [np.ones(size, np.float32) for size in [500_000, 2_000_000, 1_000_000] * 10]  # 140 MB, then freed
del kept
held = rss_mb()
released = host_memory.release_freed_memory()
print(held, rss_mb(), released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_the_memory_kept_for_reuse_is_given_back_between_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", RELEASE], env=env, capture_output=True, text=True, timeout=120,
                            check=True)
    held, after, released = result.stdout.split()
    assert float(held) - float(after) > 100 and released == "True", result.stdout  # the 140 MB kept, then returned


def test_a_run_queue_gives_back_each_runs_memory(monkeypatch):
    calls = []
    monkeypatch.setattr("lamb_edu.host_memory.release_freed_memory", lambda: calls.append(1) or True)
    queue = RunQueue(lambda seed: nn.MLP([784, 8, 10], seed=seed), study_data(synthetic_mnist(256, 50), 128, 64),
                     epochs=1)
    make = lambda parameters, lr: optim.SGD(parameters, lr=lr)  # noqa: E731
    queue.run("sgd", make, 32, 0.1)
    queue.run("sgd", make, 32, 0.1, lr_rule="tuned")  # the same run again: nothing trained, nothing released
    queue.run("sgd", make, 64, 0.1)
    assert len(calls) == 2
