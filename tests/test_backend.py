"""The backend switch, its errors and its helpers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lamb_edu import backend


def test_default_is_float32_and_to_numpy_returns_host_array():
    assert backend.default_dtype() == np.float32
    array = backend.xp.arange(4, dtype=backend.default_dtype())
    host = backend.to_numpy(array)
    assert isinstance(host, np.ndarray) and host.tolist() == [0, 1, 2, 3]


def test_unknown_backend_is_a_value_error_and_changes_nothing():
    before = backend.name()
    with pytest.raises(ValueError, match="tensorflow"):
        backend.use("tensorflow")
    assert backend.name() == before


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_cupy_missing_gives_install_hint():
    before = backend.name()
    with pytest.raises(backend.BackendUnavailableError, match="pip install cupy-cuda12x"):
        backend.use("cupy")
    assert backend.name() == before


def test_generator_is_seeded():
    assert backend.generator(5).normal() == backend.generator(5).normal()
    backend.seed(7)
    first = backend.generator().normal()
    backend.seed(7)
    assert backend.generator().normal() == first


def test_set_default_dtype_validates():
    with pytest.raises(ValueError, match="int32"):
        backend.set_default_dtype("int32")


def test_env_var_selects_backend_in_a_fresh_process():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import lamb_edu; print(lamb_edu.backend.name())"],
        env={**__import__("os").environ, "LAMB_EDU_BACKEND": "numpy"},
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == "numpy"

