"""The README's large-batch tables say what the committed study (``figures/results.json``) holds.

The README quotes the study's numbers in tables typed into Markdown; a re-run that changes the study
and not the text would leave them stale. Each cell is recomputed here from the stored run table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lamb_edu.experiments.large_batch_result import LargeBatchResult

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("sgd", "adamw", "lars", "lamb")


@pytest.fixture(scope="module")
def study() -> LargeBatchResult:
    results = json.loads((ROOT / "figures" / "results.json").read_text(encoding="utf-8"))
    if results.get("large_batch", {}).get("mode") != "full":
        pytest.skip("figures/results.json holds no full large-batch study")
    return LargeBatchResult.from_summary(results["large_batch"])


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Large batches"):text.index("## Tiny BERT")]


def _tables_with(header: str) -> list[list[list[str]]]:
    """The cells of every Markdown table of the section whose header line is ``header``, in order."""
    lines, tables = _section().splitlines(), []
    for index, line in enumerate(lines):
        if line == header:
            table = []
            for row in lines[index + 2:]:
                if not row.startswith("|"):
                    break
                table.append([cell.strip() for cell in row.strip("|").split("|")])
            tables.append(table)
    return tables


BY_BATCH = "| batch | SGD + Nesterov | AdamW | LARS | LAMB |"  # the gap-closed, steps and quick tables


def test_the_accuracy_table_is_the_studys(study):
    (rows,) = _tables_with("| batch (steps) | protocol | SGD + Nesterov | AdamW | LARS | LAMB |")
    batch = None
    checked = 0
    for row in rows:
        if row[1] == "rule-scaled, seed 0":
            continue
        batch = int(row[0].split("(")[0].replace(" ", "")) if row[0] else batch
        protocol = {"lr grid": "lr_grid", "quasi-random": "quasi_random"}[row[1]]
        for name, cell in zip(ORDER, row[2:]):
            mean, half, lr = map(float, re.match(r"\**([\d.]+) ± ([\d.]+) %\** \(([\d.e-]+)\)", cell).groups())
            accuracies = study.accuracy(name, "tuned", protocol=protocol)[batch]
            assert mean == pytest.approx(100 * sum(accuracies) / len(accuracies), abs=0.006), (batch, name, protocol)
            assert half == pytest.approx(50 * (max(accuracies) - min(accuracies)), abs=0.006), (batch, name, protocol)
            assert lr == pytest.approx(study.lr_of(name, "tuned", protocol)[batch], rel=6e-3), (batch, name, protocol)
            checked += 1
    assert checked == 2 * len(study.batch_sizes) * len(ORDER)


def test_the_gap_closed_table_is_the_studys(study):
    rows = _tables_with(BY_BATCH)[0]
    assert [int(row[0]) for row in rows] == list(study.batch_sizes)
    for row in rows:
        for name, cell in zip(ORDER, row[1:]):
            change = float(cell.replace("−", "-"))
            assert change == pytest.approx(100 * study.gap_closed(name)[int(row[0])], abs=0.006), (row[0], name)


def test_the_steps_table_is_the_studys(study):
    rows = next(table for table in _tables_with(BY_BATCH) if table[-1][0] == "critical batch")
    for row in rows[:-1]:
        batch = int(row[0])
        for name, cell in zip(ORDER, row[1:]):
            grid, tuned = (part.strip() for part in cell.split("/"))
            expected_grid = study.steps_to_target(name).get(batch)
            assert grid == ("never" if expected_grid is None else f"{expected_grid:g}"), (batch, name)
            expected = study.best_steps(name)
            assert tuned == ("—" if batch not in expected else "never" if expected[batch] is None
                             else str(expected[batch])), (batch, name)
    assert rows[-1][1:] == [str(study.critical_batch(name)) for name in ORDER]


def test_the_chosen_settings_table_is_the_studys(study):
    (rows,) = _tables_with("| batch | optimizer | trial | lr | β1 (momentum) | warm-up | weight decay | ε | "
                           "validation, seed 0 |")
    labels = {o.label.replace(" momentum", ""): o.name for o in study.optimizers}
    for row in rows:
        batch, name = int(row[0]), labels[row[1]]
        chosen, grid = study.chosen(name, "quasi_random")[batch], study.chosen(name)[batch]
        assert int(row[2]) == chosen.trial and float(row[3]) == pytest.approx(chosen.lr, rel=6e-3)
        assert float(row[4]) == pytest.approx(1 - chosen.settings["one_minus_beta1"], abs=6e-4)
        share, steps = re.match(r"([\d.]+) % \((\d+) steps?\)", row[5]).groups()
        assert float(share) == pytest.approx(100 * chosen.settings["warmup_share"], abs=0.06)
        assert int(steps) == chosen.warmup_steps
        assert float(row[6]) == pytest.approx(chosen.settings["weight_decay"], rel=0.03)
        assert row[7] == "-" if "eps" not in chosen.settings else \
            float(row[7]) == pytest.approx(chosen.settings["eps"], rel=0.03)
        assert row[8] == f"{100 * chosen.validation_accuracy:.1f} % / {100 * grid.validation_accuracy:.1f} %"
