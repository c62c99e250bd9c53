"""notebooks/build.py refuses bad arguments in one line before it builds or writes anything (issue 23, item 13)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SCRIPT = NOTEBOOKS / "build.py"


def _load_builder():
    spec = importlib.util.spec_from_file_location("notebook_build_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def _one_line(stderr: str, start: str) -> None:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith(f"build.py: error: {start}"), stderr


def test_a_name_that_climbs_out_of_out_is_refused_and_nothing_is_written(tmp_path):
    """'../build' read notebooks/build.py as a source and wrote build.ipynb beside --out."""
    out = tmp_path / "out"
    out.mkdir()
    result = _run("01_debias", "../build", "--out", str(out))
    assert result.returncode == 2
    _one_line(result.stderr, "unknown notebook '../build' (known: 01_debias, ")
    assert list(tmp_path.rglob("*.ipynb")) == []  # not even the good name before it


@pytest.mark.parametrize("name", ["nope", "01_debias.py", "source/01_debias", "", "01_DEBIAS"])
def test_an_unknown_name_is_one_line_and_exit_2(tmp_path, capsys, name):
    assert builder.main([name, "--out", str(tmp_path)]) == 2
    _one_line(capsys.readouterr().err, f"unknown notebook {name!r}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make_out, message", [
    (lambda tmp: tmp / "missing", "no such folder"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "not a folder"),
])
def test_a_bad_out_is_one_line_and_exit_2(tmp_path, capsys, make_out, message):
    out = make_out(tmp_path)
    assert builder.main(["01_debias", "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, f"--out {out}: {message}")
    assert not list(tmp_path.rglob("*.ipynb"))


def test_a_bad_out_from_the_command_line_has_no_traceback(tmp_path):
    result = _run("01_debias", "--out", str(tmp_path / "missing" / "deeper"))
    assert result.returncode == 2
    _one_line(result.stderr, "--out ")


def test_a_zero_timeout_is_refused(tmp_path, capsys):
    assert builder.main(["01_debias", "--timeout", "0", "--out", str(tmp_path)]) == 2
    _one_line(capsys.readouterr().err, "--timeout must be at least 1 second, got 0")


def test_a_good_build_writes_the_notebook_whole_and_leaves_no_part_file(tmp_path, capsys):
    assert builder.main(["01_debias", "01_debias", "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["01_debias.ipynb"]
    written = nbformat.read(tmp_path / "01_debias.ipynb", as_version=4)
    assert [cell.source for cell in written.cells] == [cell.source for cell in builder.build("01_debias").cells]
    assert capsys.readouterr().err.count("wrote ") == 1  # a name given twice is built once


def test_a_failed_write_is_one_line_and_leaves_no_part_file(tmp_path, capsys):
    (tmp_path / "01_debias.ipynb").mkdir()  # the target is a folder: the rename fails
    assert builder.main(["01_debias", "--out", str(tmp_path)]) == 1
    _one_line(capsys.readouterr().err, f"cannot write {tmp_path / '01_debias.ipynb'}: ")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["01_debias.ipynb"]


@pytest.mark.slow
def test_a_failing_cell_is_one_line_and_the_old_notebook_stays(tmp_path, capsys, monkeypatch):
    sources = tmp_path / "source"
    sources.mkdir()
    source = "# %% [markdown]\n# A notebook that fails\n# %%\nraise ValueError('on purpose')\n"
    (sources / "99_broken.py").write_text(source)
    monkeypatch.setattr(builder, "SOURCES", sources)
    out = tmp_path / "out"
    out.mkdir()
    (out / "99_broken.ipynb").write_text("the previous build")
    monkeypatch.delenv("LAMB_EDU_DEBUG", raising=False)
    assert builder.main(["99_broken", "--execute", "--timeout", "60", "--out", str(out)]) == 1
    _one_line(capsys.readouterr().err.splitlines()[-1] + "\n", "99_broken: a cell raised ValueError: on purpose")
    assert (out / "99_broken.ipynb").read_text() == "the previous build"
