"""The backend switch, its errors and its helpers."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import backend, cli

ROOT = Path(__file__).resolve().parent.parent


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



# ------------------------------------------------------------- a LAMB_EDU_BACKEND that cannot be used (issue 23, 13)
UNUSABLE = ["tensorflow", "CUPY " if importlib.util.find_spec("cupy") is None else "tensorflow "]
CHECK_IMPORT = """
from lamb_edu import backend
import lamb_edu.cli, lamb_edu.experiments, lamb_edu.classroom, lamb_edu.train
print(backend.environment_problem())
try:
    backend.xp.zeros(2)
except backend.BackendUnavailableError as error:
    print("refused:", error)
backend.use("numpy")
print(backend.xp.zeros(2).tolist(), backend.environment_problem())
"""


def _python(*args: str, value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAMB_EDU_BACKEND": value, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("value", UNUSABLE)
def test_an_unusable_environment_value_does_not_break_the_import_and_is_not_ignored(value):
    result = _python("-c", CHECK_IMPORT, value=value)
    assert result.returncode == 0, result.stderr
    problem, refused, after = result.stdout.splitlines()
    assert problem.startswith(f"LAMB_EDU_BACKEND={value!r} cannot be used: ")
    assert refused == f"refused: {problem}"  # arrays are refused, not silently made on NumPy
    assert after == "[0.0, 0.0] None"


@pytest.mark.slow
@pytest.mark.parametrize("value", UNUSABLE)
def test_the_command_line_reports_an_unusable_environment_value_in_one_line(value):
    assert _python("-m", "lamb_edu", "--help", value=value).returncode == 0
    assert _python("-m", "lamb_edu", "train", "--help", value=value).returncode == 0
    for command in (["plot", "nowhere"], ["train", "--epochs", "1"]):
        result = _python("-m", "lamb_edu", *command, value=value)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"lamb-edu {command[0]}: error: LAMB_EDU_BACKEND={value!r} cannot be used")
    assert "Or pass --backend numpy." in result.stderr  # train has the flag
    given = _python("-m", "lamb_edu", "train", "--backend", "numpy", "--epochs", "0", value=value)
    assert given.returncode == 2 and "--epochs" in given.stderr and "LAMB_EDU_BACKEND" not in given.stderr


@pytest.mark.parametrize("flag", [["--backend", "numpy"], ["--backend=numpy"]])
def test_backend_numpy_wins_over_an_unusable_environment_value(monkeypatch, tmp_path, capsys, flag):
    """In this process: the import-time state of a bad LAMB_EDU_BACKEND, then a run that says --backend numpy."""
    monkeypatch.setattr(backend, "_active", backend._Unusable("LAMB_EDU_BACKEND='tensorflow' cannot be used"))
    rng = np.random.default_rng(0)
    data_dir, sums = tmp_path / "mnist", {}
    data_dir.mkdir()
    for name, shape in (("train-images-idx3-ubyte", (64, 28, 28)), ("train-labels-idx1-ubyte", (64,)),
                        ("t10k-images-idx3-ubyte", (16, 28, 28)), ("t10k-labels-idx1-ubyte", (16,))):
        array = rng.integers(0, 10 if "labels" in name else 256, size=shape, dtype=np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
        (data_dir / name).write_bytes(header + array.tobytes())
        sums[name] = hashlib.sha256(header + array.tobytes()).hexdigest()
    monkeypatch.setattr("lamb_edu.data.SHA256", sums)  # these are not the canonical files
    code = cli.main(["train", *flag, "--epochs", "1", "--batch-size", "32", "--hidden", "8",
                     "--data-dir", str(data_dir), "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    assert backend.name() == "numpy" and backend.environment_problem() is None
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["settings"]["backend"] == "numpy"
