"""The MNIST lessons quote no measured number by hand: their results are printed by cells computed from the result
objects, and the text's claims agree with what those cells printed in the committed notebooks.

A measured number typed into a lesson's text goes stale the next time the runs change (a new rule, a new
network); a number printed by a cell cannot. So in notebooks 03, 04 and 05 every number with a decimal
point or a % sign left in the prose (outside formulas and code) must be a setting or a constant listed
here with its reason; and each claim the prose makes about the runs must match the line a cell computed.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Numbers the prose may state: settings of the runs, constants of formulas and of the data.
SETTINGS = {"0.01", "0.1", "0.02", "0.99", "0.999", "0.9", "2.30", "2.20", "1.5", "10", "1"}
ALLOWED = {
    "03_trust_ratio": SETTINGS | {"11.35"},  # chance level: the share of the most common digit
    "04_adam_vs_lamb_mnist": SETTINGS | {"11.35"},  # chance level: the share of the most common digit
    # the code README's claim as it states it; 1/√(3·784), 0.02·3.16 and the peak of (1 − 0.9ᵗ)/√(1 − 0.999ᵗ)
    "05_learning_rate_and_weight_decay": SETTINGS | {"11", "98", "0.021", "0.063", "6.6"},
}
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\([^()]*\d{4,}[^()]*\)", re.S)
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?=\s?%))")


def _cells(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    printed = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                        for output in cell.outputs)
    return markdown, printed


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_the_prose_quotes_no_measured_number(name):
    markdown, _ = _cells(name)
    prose = MATH.sub(" ", markdown.split("## Exercises")[0])  # formulas, code and exercises may hold any number
    typed = sorted({number for number in NUMBER.findall(prose) if number not in ALLOWED[name]})
    assert not typed, f"notebook {name} types numbers a cell should print: {typed}"


def test_notebook_03_claims_match_its_printed_lines():
    markdown, printed = _cells("03_trust_ratio")
    assert "every layer's first r below 1: True" in printed  # "Every layer's r starts far below 1"
    ratios = re.search(r"first r over RMS\(w\) at step 1, per layer \(LAMB\): \[([^\]]*)\]", printed).group(1)
    assert all(abs(float(value) - 1) < 0.05 for value in ratios.split())  # "about 1 for every layer"
    assert "r first" in printed and "Which code did the article run?" in markdown


def test_notebook_04_claims_match_its_printed_lines():
    markdown, printed = _cells("04_adam_vs_lamb_mnist")
    assert "verdict: LAMB ends ahead on" in printed
    # "the spike is there *with* the bias correction too, only lower"
    line = re.search(r"the spike without bias correction is ([\d.]+) times the one with it; with it the loss (\w+)",
                     printed)
    assert float(line.group(1)) > 1 and line.group(2) == "still"
    assert "does **not** learn at lr 0.01" in markdown


def test_notebook_05_claims_match_its_printed_lines():
    markdown, printed = _cells("05_learning_rate_and_weight_decay")
    claims = re.findall(r"^(holds|DOES NOT HOLD): (.*)$", printed, re.M)
    assert len(claims) == 4 and all(verdict == "holds" for verdict, _ in claims), claims  # "as the article says"
    assert "rule: June 2019 rule" in printed  # the June rule's runs are printed beside the May rule's
    june = printed[printed.index("lr_and_weight_decay@june2019"):]
    assert re.search(r"LAMB lr 0.1, wd 0.01\s+diverged, diverged, diverged", june)  # "diverged from every seed"
