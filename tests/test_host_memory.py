"""``host_memory.keep_freed_memory``: a step that allocates and frees its activations reuses the memory instead
of page-faulting it back in from the kernel each time (measured in fresh processes, with and without it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
