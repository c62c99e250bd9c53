"""The README's Layout section names every package and top-level module under lamb_edu/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lamb_edu"


def _layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "README.md has no '## Layout' section"
    return match.group(1)


def test_every_package_and_top_level_module_is_named_in_the_layout():
    layout = _layout_section()
    packages = sorted(p.parent.relative_to(ROOT).as_posix() + "/" for p in PACKAGE.rglob("__init__.py"))
    modules = sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    # a package's sub-packages and a top-level module may be named by their last part alone, after their parent
    missing = [name for name in packages + modules
               if name not in layout and f"{name.rstrip('/').rsplit('/', 1)[-1]}" not in layout]
    assert not missing, f"README Layout does not name: {missing}"


def test_no_module_is_over_400_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            long_modules.append(path.relative_to(ROOT).as_posix())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long_functions.append(f"{path.relative_to(ROOT).as_posix()}:{node.name}")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
