"""The classroom notebooks run from top to bottom in quick mode, and the committed copies read well.

Each notebook is executed by ``notebooks/build.py`` in a fresh ``python3`` kernel with
``LAMB_EDU_QUICK=1`` (as CI does), in a process of its own with a time limit; a cell that raises fails
the test. The committed ``.ipynb`` files must match their sources in
``notebooks/source/`` and carry their outputs (figures included) with no error among them.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = [
    "01_debias",
    "02_from_sgd_to_lamb",
    "03_trust_ratio",
    "04_adam_vs_lamb_mnist",
    "05_learning_rate_and_weight_decay",
    "06_large_batches",
    "07_data_parallel",
    "08_spot_the_misquote",
    "09_why_lamb_not_lars",
]
MNIST_NOTEBOOKS = {"03_trust_ratio", "04_adam_vs_lamb_mnist", "05_learning_rate_and_weight_decay", "06_large_batches",
                   "07_data_parallel", "08_spot_the_misquote"}
TEXT_NOTEBOOKS = {"09_why_lamb_not_lars"}
ROOT = NOTEBOOKS.parent


def _load_builder():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mnist_available() -> bool:
    from lamb_edu import data

    try:
        data.load_mnist(download=False)
    except Exception:
        return False
    return True


def _text_available() -> bool:
    from lamb_edu import data

    try:
        data.load_tiny_shakespeare(download=False)
    except Exception:
        return False
    return True


def _present(name: str) -> bool:
    return (NOTEBOOKS / "source" / f"{name}.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_quick_mode(name, tmp_path):
    if not _present(name):
        pytest.skip(f"notebooks/source/{name}.py is not written yet")
    if name in MNIST_NOTEBOOKS and not _mnist_available():
        pytest.skip("needs the MNIST files (set LAMB_EDU_DATA to the folder holding them)")
    if name in TEXT_NOTEBOOKS and not _text_available():
        pytest.skip("needs tiny Shakespeare (set LAMB_EDU_DATA to the data root holding tinyshakespeare/)")
    environment = {**os.environ, "LAMB_EDU_QUICK": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    environment.pop("MPLBACKEND", None)
    # build.py runs the notebook in its own process group, so a kernel that hangs or dies fails this
    # test within the time limit (and is killed with its kernel) instead of holding up the suite
    command = [sys.executable, str(NOTEBOOKS / "build.py"), name, "--execute", "--quick", "--out", str(tmp_path)]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        log, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"notebook {name} did not finish within 600 s")
    assert process.returncode == 0, f"notebook {name} failed:\n{log[-3000:]}"
    notebook = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("image/png" in output.get("data", {}) for output in outputs), "the notebook draws no figure"
    assert any("mode: quick" in output.get("text", "") for output in outputs), \
        "LAMB_EDU_QUICK=1 did not force quick mode"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_source_and_has_outputs(name):
    if not _present(name):
        pytest.skip(f"notebooks/source/{name}.py is not written yet")
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    built = _load_builder().build(name)
    assert [cell.source for cell in committed.cells] == [cell.source for cell in built.cells], (
        f"notebooks/{name}.ipynb is out of date: run python notebooks/build.py {name} --execute"
    )
    markdown = "\n".join(cell.source for cell in committed.cells if cell.cell_type == "markdown")
    assert "$" in markdown, "the notebook gives no equations"
    assert "Exercises" in markdown
    assert "Solutions" in markdown, "the exercises have no solutions"
    assert "You will learn" in markdown.split("##")[0], "the notebook does not open with its learning goals"
    assert "## Summary" in markdown.split("Exercises")[-1], "the notebook does not end with a summary"
    first_code = next(cell.source for cell in committed.cells if cell.cell_type == "code")
    assert 'find_spec("lamb_edu") is None' in first_code, "the first code cell does not install lamb-edu when missing"
    code_cells = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(cell.outputs or not cell.source.strip() for cell in code_cells[:1]), "committed without outputs"
    outputs = [output for cell in code_cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"], "an error output was committed"
    stderr = [output.get("text", "") for output in outputs if output.get("name") == "stderr"]
    assert not [text for text in stderr if "Traceback" in text]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 1, "no figure in the committed outputs"
