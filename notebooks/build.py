"""Build the classroom notebooks from their sources, and optionally run them.

Each notebook is written as a plain Python file in ``notebooks/source/`` (easy to review in a diff):
a line ``# %% [markdown]`` starts a Markdown cell whose lines are comments (``# text``), and a line
``# %%`` starts a code cell (in which ``# %magic`` lines become IPython magics); the same install cell
(``INSTALL_CELL``) is put before every notebook's first code cell. This script turns
``source/NN_name.py`` into ``NN_name.ipynb`` and, with ``--execute``, runs it so the notebook is
saved with its outputs (``--quick`` sets LAMB_EDU_QUICK=1 for the run)::

    python notebooks/build.py --execute            # full settings, as committed
    python notebooks/build.py --execute --quick    # the quick settings CI uses
    python notebooks/build.py 01_debias --execute  # one notebook
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"
CELL_MARKER = "# %%"
MARKDOWN_MARKER = "# %% [markdown]"
# Every notebook's first code cell, written here once: on a hosted notebook service lamb-edu may be missing.
INSTALL_CELL = """\
# On a hosted notebook service lamb-edu may be missing: install it (nothing is downloaded when it is importable)
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("lamb_edu") is None:
    if subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "lamb-edu"]).returncode != 0:
        raise RuntimeError("lamb-edu is not installed and `pip install lamb-edu` failed: clone the project's "
                           "repository, run `pip install -e .` in it, and restart the kernel")
import lamb_edu

print("lamb-edu", lamb_edu.__version__)
"""


def parse_source(text: str) -> list[nbformat.NotebookNode]:
    """Split a percent-format source into Markdown and code cells."""
    cells: list[nbformat.NotebookNode] = []
    kind, lines = None, []

    def close() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body.strip():
            # an IPython magic is written as a comment ("# %matplotlib inline") so the source stays Python
            body = "\n".join(line[2:] if line.startswith("# %") else line for line in body.splitlines())
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith(MARKDOWN_MARKER):
            close()
            kind, lines = "markdown", []
        elif line.startswith(CELL_MARKER):
            close()
            kind, lines = "code", []
        elif kind is not None:
            lines.append(line)
    close()
    return cells


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` (e.g. '01_debias') from its source, without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = parse_source((SOURCES / f"{name}.py").read_text(encoding="utf-8"))
    first_code = next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), len(notebook.cells))
    notebook.cells.insert(first_code, nbformat.v4.new_code_cell(INSTALL_CELL.rstrip("\n")))
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{name}-{index:02d}"  # stable ids keep rebuilt notebooks diff-friendly
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, timeout: int = 3600) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel started in ``notebooks/``; an error, or a cell running
    longer than ``timeout`` seconds (the full large-batch study is one cell of over 20 minutes), raises."""
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    return notebook


class BuildError(Exception):
    """A bad argument or a failed step, reported as one line (``exit_code`` 2 for arguments, 1 otherwise)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def available_names() -> list[str]:
    """The notebooks that have a source: ``NN_name`` for every ``source/NN_name.py``."""
    return sorted(path.stem for path in SOURCES.glob("[0-9][0-9]_*.py"))


def check_arguments(names: list[str], out: Path, timeout: int) -> list[str]:
    """The notebooks to build, checked with ``out`` and ``timeout`` before anything is built or written.

    A name must be one of ``available_names()`` exactly (so ``../build`` cannot leave ``out``), ``out``
    an existing folder this process may write in, and ``timeout`` at least 1 second.
    """
    known = available_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BuildError(f"unknown notebook {unknown[0]!r} (known: {', '.join(known)})")
    if not out.is_dir():
        raise BuildError(f"--out {out}: {'not a folder' if out.exists() else 'no such folder'}")
    if not os.access(out, os.W_OK | os.X_OK):
        raise BuildError(f"--out {out}: this folder is not writable")
    if timeout < 1:
        raise BuildError(f"--timeout must be at least 1 second, got {timeout}")
    return list(dict.fromkeys(names or known))


def write_notebook(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed over it when complete."""
    temporary = path.with_name(f".{path.name}.part")
    try:
        nbformat.write(notebook, temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BuildError(f"cannot write {path}: {error.strerror or error}", 1) from None


def build_one(name: str, out: Path, run: bool, timeout: int) -> None:
    """Build ``name`` (and run it, with ``run``) into ``out/name.ipynb``; a failing cell is a BuildError."""
    notebook = build(name)
    if run:
        print(f"running {name} ...", file=sys.stderr)
        started = time.perf_counter()
        try:
            execute(notebook, timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            if os.environ.get("LAMB_EDU_DEBUG"):
                raise
            what = (f"a cell raised {error.ename}: {error.evalue}" if isinstance(error, CellExecutionError)
                    else f"{type(error).__name__}: {str(error).strip().splitlines()[0]}")
            raise BuildError(f"{name}: {what} (LAMB_EDU_DEBUG=1 shows the cell and its traceback; "
                             f"{out / f'{name}.ipynb'} was left as it was)", 1) from None
        print(f"ran {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for cell in notebook.cells:  # stable files: drop volatile per-run metadata
        cell.metadata.pop("execution", None)
    write_notebook(notebook, out / f"{name}.ipynb")
    print(f"wrote {out / f'{name}.ipynb'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Build (and with --execute run) the notebooks; every error is one line on stderr and exit code 2 or 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all sources)")
    parser.add_argument("--execute", action="store_true", help="run the notebooks and save their outputs")
    parser.add_argument("--quick", action="store_true", help="run with LAMB_EDU_QUICK=1")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the .ipynb files (default: notebooks/)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default: 3600)")
    args = parser.parse_args(argv)
    try:
        names = check_arguments(args.names, args.out, args.timeout)
        if args.quick:
            os.environ["LAMB_EDU_QUICK"] = "1"
        os.environ.pop("MPLBACKEND", None)  # the notebooks draw inline
        # the kernels import this checkout's lamb_edu, not another installed copy
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
        for name in names:
            build_one(name, args.out, args.execute, args.timeout)
    except BuildError as error:
        print(f"build.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
