"""The README's data-parallel table says what the committed benchmark files hold.

``benchmarks/data_parallel.json`` (MLP, CNN) and ``benchmarks/data_parallel_tiny_bert.json`` hold every
round of ``bench_data_parallel.py --rounds N``; each cell of the table between the
``data-parallel-table`` markers is recomputed here from them, so a new measurement cannot leave stale text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ("data_parallel.json", "data_parallel_tiny_bert.json")
MODEL_NAMES = {"mlp": "MLP", "cnn": "CNN", "bert": "tiny BERT"}


def readme_rows() -> dict[tuple[str, str, int], list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("<!-- data-parallel-table:begin -->"):text.index("<!-- data-parallel-table:end -->")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()[3:]]
    return {(row[0], row[1], int(row[2])): row[3:] for row in rows}


def label(run: dict) -> str:
    mode = {"single": "one process", "plain": "plain", "sharded": "ZeRO-1"}[run["mode"]]
    if run["blas_threads"] == "2":
        return f"{mode}, 2 BLAS threads"
    return f"{mode} (DataParallel)" if run["mode"] == "plain" and run["ranks"] == 1 else mode


def expected_rows() -> dict[tuple[str, str, int], list[str]]:
    rows = {}
    for name in FILES:
        runs = json.loads((ROOT / "benchmarks" / name).read_text(encoding="utf-8"))["runs"]
        for run in runs:
            one = next(r for r in runs if r["model"] == run["model"] and r["mode"] == "single"
                       and r["blas_threads"] == "1")
            ratios = [a / b for a, b in zip(one["step_seconds_each_round"], run["step_seconds_each_round"])]
            assert len(ratios) == run["rounds"] >= 3  # every round kept, and more than one
            rows[MODEL_NAMES[run["model"]], label(run), run["ranks"]] = [
                f"{1e3 * run[key]:.2f}" for key in ("step_seconds", "compute_seconds",
                                                    "exposed_communication_seconds", "optimizer_seconds")] + [
                f"{run['images_per_second']:.0f}", f"{run['images_per_second'] / one['images_per_second']:.2f}x",
                f"{min(ratios):.2f}-{max(ratios):.2f}"]
    return rows


def test_every_measured_configuration_has_its_row_and_nothing_else():
    assert sorted(readme_rows()) == sorted(expected_rows())


@pytest.mark.parametrize("key", sorted(expected_rows()))
def test_each_row_is_its_measurement(key):
    assert readme_rows()[key] == expected_rows()[key]


def test_the_median_is_the_middle_round():
    for name in FILES:
        for run in json.loads((ROOT / "benchmarks" / name).read_text(encoding="utf-8"))["runs"]:
            rounds = sorted(run["step_seconds_each_round"])
            assert run["step_seconds"] == pytest.approx(rounds[len(rounds) // 2])
            assert run["images_per_second"] == pytest.approx(run["global_batch"] / run["step_seconds"])
