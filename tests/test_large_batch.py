"""The large-batch study: one run against a hand-written loop, the grid, the run table, the figures, the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import nn, optim, plots
from lamb_edu.autograd import Tensor
from lamb_edu.data import MNIST, batches, prepare
from lamb_edu.experiments import EXPERIMENTS, large_batch
from lamb_edu.experiments.batch_sweep import (
    RUN_FIELDS,
    evaluation_steps,
    mark_tuned,
    steps_to_target,
    study_data,
    sweep,
    train_at_batch,
)
from lamb_edu.experiments.large_batch import STUDY_OPTIMIZERS, LargeBatchResult, LargeBatchSettings, StudyOptimizer

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_mnist(count: int = 600, test: int = 200, seed: int = 0) -> MNIST:
    """Digits drawn as a bright 4x4 square whose position is the label, plus noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def draw(n):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            row, column = divmod(int(label), 5)
            image[4 + 10 * row: 8 + 10 * row, 2 + 5 * column: 6 + 5 * column] = 255
        return images, labels.astype(np.int64)

    return MNIST(*draw(count), *draw(test))


def small_mlp(seed: int) -> nn.MLP:
    return nn.MLP([784, 16, 10], seed=seed)


# ------------------------------------------------------------------------------ the pieces
def test_evaluation_steps_are_log_spaced_and_end_at_the_last_step():
    # by hand: round(2^(k/4)) for k = 0 .. 17, capped at 16
    assert evaluation_steps(16) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 16]
    assert evaluation_steps(1) == [1]
    steps = evaluation_steps(3840)
    assert steps[-1] == 3840 and steps == sorted(set(steps))
    ratios = np.array(steps[8:]) / np.array(steps[7:-1])
    assert ratios.max() < 2 ** 0.25 * 1.1  # about four per doubling, so a step count is known to ~19 %


def test_steps_to_target_is_the_first_step_at_or_above_it():
    assert steps_to_target([1, 2, 4, 8], [0.5, 0.9, 0.8, 0.95], 0.9) == 2
    assert steps_to_target([1, 2, 4, 8], [0.5, 0.6, 0.8, 0.85], 0.9) is None


def test_study_data_splits_do_not_overlap():
    mnist = synthetic_mnist(600, 100)
    split = study_data(mnist, 400, 150, test_size=50, curve_size=30)
    assert split.train_size == 400 and len(split.mnist.test_images) == 50
    expected_x, expected_y = prepare(mnist.train_images[-150:], mnist.train_labels[-150:])
    np.testing.assert_array_equal(split.validation[0], expected_x)
    np.testing.assert_array_equal(split.validation[1], expected_y)
    assert len(split.curve[0]) == 30
    with pytest.raises(ValueError, match="450 \\+ 151"):
        study_data(mnist, 450, 151)


# ------------------------------------------------------------------------------ one run
def test_a_run_equals_a_hand_written_loop_with_warmup_and_linear_decay():
    mnist = synthetic_mnist(256, 100)
    split = study_data(mnist, 192, 64, curve_size=64)
    epochs, batch, peak = 3, 64, 0.05
    run = train_at_batch(small_mlp, lambda p, lr: optim.LAMB(p, lr=lr, weight_decay=0.01), split, optimizer="lamb",
                         batch_size=batch, lr=peak, epochs=epochs, warmup_fraction=0.25, target=0.5)
    # the same run by hand: 3 steps an epoch, 9 in all, warm-up ceil(0.25 * 9) = 3 steps
    total, warmup = 9, 3
    model = small_mlp(0)
    optimizer = optim.LAMB(model.parameters(), lr=peak, weight_decay=0.01)
    x, y = prepare(mnist.train_images[:192], mnist.train_labels[:192])
    step = 0
    for epoch in range(epochs):
        for xb, yb in batches(x, y, batch, 0, epoch):
            factor = (step + 1) / warmup if step < warmup else 1 - (step - warmup) / (total - warmup)
            optimizer.param_groups[0]["lr"] = peak * factor
            loss = nn.cross_entropy(model(Tensor(xb)), yb)
            model.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    x_test, y_test = prepare(mnist.test_images, mnist.test_labels)
    x_val, y_val = prepare(mnist.train_images[-64:], mnist.train_labels[-64:])
    test_accuracy = float((model(Tensor(x_test)).data.argmax(axis=1) == y_test).mean())
    validation_accuracy = float((model(Tensor(x_val)).data.argmax(axis=1) == y_val).mean())
    assert (run.steps, run.warmup_steps) == (total, warmup)
    assert run.final_test_accuracy == pytest.approx(test_accuracy, abs=1e-12)
    assert run.validation_accuracy == pytest.approx(validation_accuracy, abs=1e-12)
    assert run.eval_steps == evaluation_steps(total) and len(run.eval_accuracy) == len(run.eval_steps)
    assert run.eval_accuracy[-1] == pytest.approx(validation_accuracy)  # the curve's slice is the whole validation here
    assert run.steps_to_target == steps_to_target(run.eval_steps, run.eval_accuracy, 0.5)
    assert run.final_test_accuracy > 0.5 and not run.diverged


def test_a_run_at_a_huge_learning_rate_is_marked_diverged():
    split = study_data(synthetic_mnist(256, 50), 192, 64)
    run = train_at_batch(small_mlp, lambda p, lr: optim.SGD(p, lr=lr), split, optimizer="sgd", batch_size=64,
                         lr=1e6, epochs=2)
    assert run.diverged and run.status == "diverged" and run.steps < 6


# ------------------------------------------------------------------------------ the grid
@pytest.fixture(scope="module")
def tiny_sweep():
    split = study_data(synthetic_mnist(320, 100), 256, 64)
    return sweep(small_mlp, lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True), split, optimizer="sgd",
                 batch_sizes=[32, 128], lrs=[0.01, 0.1, 1.0], epochs=2, target=0.6)


def test_sweep_runs_every_cell_and_marks_one_tuned_lr_per_batch(tiny_sweep):
    assert [(run.batch_size, run.lr) for run in tiny_sweep] == [(b, lr) for b in (32, 128) for lr in (0.01, 0.1, 1.0)]
    assert [run.steps for run in tiny_sweep] == [16] * 3 + [4] * 3  # 2 epochs of 256 images
    for batch in (32, 128):
        cells = [run for run in tiny_sweep if run.batch_size == batch]
        tuned = [run for run in cells if run.lr_rule == "tuned"]
        assert len(tuned) == 1 and tuned[0].validation_accuracy == max(run.validation_accuracy for run in cells)
    assert all(set(run.row()) == set(RUN_FIELDS) for run in tiny_sweep)
    json.dumps(tiny_sweep[0].row(), allow_nan=False)


def test_mark_tuned_breaks_ties_towards_the_smaller_lr(tiny_sweep):
    from dataclasses import replace

    runs = [replace(run, lr_rule="grid", validation_accuracy=0.9) for run in tiny_sweep[:3]]
    assert [run.lr_rule for run in mark_tuned(runs)] == ["tuned", "grid", "grid"]


class RecordingBar:
    """Stands in for the tqdm bar: keeps its total and every position it was moved to."""

    def __init__(self, total):
        self.total, self.n, self.positions, self.closed = total, 0, [], False

    def update(self, count):
        self.n += count
        self.positions.append(self.n)

    def set_postfix_str(self, text):
        pass

    def close(self):
        self.closed = True


def test_the_progress_bar_counts_training_images_and_ends_full(monkeypatch):
    import lamb_edu.experiments.batch_sweep as batch_sweep

    bars = []
    monkeypatch.setattr(batch_sweep, "_progress", lambda enabled, total, description, unit="step":
                        bars.append(RecordingBar(total)) or bars[-1])
    split = study_data(synthetic_mnist(320, 100), 256, 64)
    sweep(small_mlp, lambda p, lr: optim.SGD(p, lr=lr), split, optimizer="sgd", batch_sizes=[32, 100],
          lrs=[0.01, 0.1], epochs=2, progress=True)
    (bar,) = bars
    # 4 runs of 2 epochs over 256 images, known before the first step (100 does not divide 256)
    assert bar.total == 4 * 2 * 256 and bar.n == bar.total and bar.closed
    assert bar.positions == sorted(bar.positions) and 256 in bar.positions


@pytest.mark.parametrize("batch_sizes, lrs, accumulate, match", [
    ([], [0.1], 1, "batch sizes is empty"),
    ([32], [], 1, "learning rates is empty"),
    ([512], [0.1], 1, "batch size 512"),
    ([32], [0.0], 1, "learning rate 0.0"),
    ([32], [math.nan], 1, "learning rate nan"),
    ([32], [0.1], 0, "accumulate"),
])
def test_sweep_checks_its_grid_before_training(batch_sizes, lrs, accumulate, match):
    split = study_data(synthetic_mnist(320, 50), 256, 64)
    with pytest.raises(ValueError, match=match):
        sweep(small_mlp, lambda p, lr: optim.SGD(p, lr=lr), split, optimizer="sgd", batch_sizes=batch_sizes, lrs=lrs,
              epochs=1, accumulate=accumulate)


# ------------------------------------------------------------------------------ the study
def real_data_dir() -> str:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the directory with the four IDX files")
    return directory


@pytest.fixture(scope="module")
def tiny_study():
    real_data_dir()
    optimizers = tuple(StudyOptimizer(o.name, o.label, o.class_name, o.rule, o.grid[2:6:2], o.options)
                       for o in STUDY_OPTIMIZERS)
    settings = LargeBatchSettings(batch_sizes=(32, 128, 256), epochs=1, train_size=512, validation_size=256,
                                  test_size=300, target=0.5, optimizers=optimizers, repeat_seeds=(1,))
    return large_batch(quick=True, settings=settings)


def test_the_study_scales_the_smallest_batchs_tuned_lr_by_each_rule(tiny_study):
    for study_optimizer in tiny_study.optimizers:
        name = study_optimizer.name
        tuned, scaled = tiny_study.lr_of(name, "tuned"), tiny_study.lr_of(name, "scaled")
        power = 1.0 if study_optimizer.rule == "linear" else 0.5
        for batch in (32, 128, 256):
            assert scaled[batch] == pytest.approx(tuned[32] * (batch / 32) ** power, rel=1e-9)
        assert {run.lr for run in tiny_study.select(study_optimizer.name, "grid")} <= set(study_optimizer.grid)
    assert (STUDY_OPTIMIZERS[0].rule, STUDY_OPTIMIZERS[1].rule, STUDY_OPTIMIZERS[2].rule, STUDY_OPTIMIZERS[3].rule) == (
        "linear", "sqrt", "linear", "sqrt")


def test_the_run_table_has_every_field_and_the_repeats(tiny_study):
    table = tiny_study.table()
    grid_runs = 4 * 3 * 2
    assert len(tiny_study.select(lr_rule=("grid", "tuned"), seed=0)) == grid_runs
    assert len(tiny_study.select(lr_rule="scaled")) == 4 * 3
    assert len(tiny_study.select(lr_rule="tuned", seed=1)) == 4 * 3
    for row in table:
        assert set(row) == set(RUN_FIELDS) and row["lr_rule"] in ("grid", "tuned", "scaled")
        assert row["steps"] == math.ceil(512 / row["batch_size"])
        assert 0 <= row["final_test_accuracy"] <= row["best_test_accuracy"] <= 1
    # a scaled lr that falls on the grid is that grid run, not a second training
    for run in tiny_study.select(lr_rule="scaled", seed=0):
        twin = [other for other in tiny_study.select(run.optimizer, ("grid", "tuned"), 0, run.batch_size)
                if other.lr == run.lr]
        assert not twin or twin[0].final_test_accuracy == run.final_test_accuracy
    summary = json.loads(json.dumps(tiny_study.summary(), allow_nan=False))
    assert len(summary["runs"]) == len(table)
    tuned_lr = {str(k): v for k, v in tiny_study.lr_of("lamb", "tuned").items()}
    assert summary["optimizers"]["lamb"]["tuned_lr"] == tuned_lr


def test_the_figures_draw_the_run_table(tiny_study):
    figures = plots.experiment_figures("large_batch", tiny_study)
    assert set(figures) == {"large_batch_accuracy.png", "large_batch_heatmap.png", "large_batch_steps.png"}
    heatmap = figures["large_batch_heatmap.png"]
    lamb_axis = [axis for axis in heatmap.axes if axis.get_title() == "LAMB"][0]
    image = lamb_axis.get_images()[0].get_array()
    lrs = sorted({run.lr for run in tiny_study.select("lamb", ("grid", "tuned"), 0)})
    for run in tiny_study.select("lamb", ("grid", "tuned"), 0):
        assert image[lrs.index(run.lr), (32, 128, 256).index(run.batch_size)] == run.final_test_accuracy
    accuracy_axis = figures["large_batch_accuracy.png"].axes[0]
    tuned_line = [line for line in accuracy_axis.get_lines() if line.get_label() == "LAMB, lr grid"][0]
    expected = [100 * np.mean(values) for values in tiny_study.accuracy("lamb", "tuned").values()]
    np.testing.assert_allclose(tuned_line.get_ydata(), expected)
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


def test_a_result_comes_back_from_its_summary(tiny_study):
    summary = json.loads(json.dumps(tiny_study.summary(), allow_nan=False))  # as results.json holds it
    back = LargeBatchResult.from_summary(summary)
    assert json.loads(json.dumps(back.summary())) == summary
    assert back.settings.hidden == tiny_study.settings.hidden and back.optimizers == tiny_study.optimizers
    assert back.behind_best() == tiny_study.behind_best()


def test_the_steps_figure_draws_the_median_seed_and_a_miss_on_the_budget():
    from lamb_edu.experiments.batch_sweep import BatchRun

    def run(batch, seed, steps_to_target):
        return BatchRun("lamb", batch, 0.01, "tuned", seed, 1, 512 // batch, 1, 0.9, 0.9, 0.9, 0.5,
                        steps_to_target, 1.0, False, "learned")

    settings = LargeBatchSettings(batch_sizes=(32, 128), epochs=1, train_size=512, validation_size=64, test_size=64,
                                  target=0.5, optimizers=STUDY_OPTIMIZERS[3:], repeat_seeds=(1, 2))
    # the report seeds 1 and 2 only (seed 0 chose the setting): batch 32 reaches it at 10 and 12 -> median 11;
    # batch 128: one report seed of two reaches it -> a miss, though seed 0 reached it
    runs = [run(32, 0, None), run(32, 1, 10), run(32, 2, 12), run(128, 0, 3), run(128, 1, 3), run(128, 2, None)]
    result = LargeBatchResult(runs, settings, True, 0.0)
    assert result.steps_to_target("lamb") == {32: 11.0, 128: None}
    assert LargeBatchResult(runs[:1] + runs[3:4], settings, True, 0.0).steps_to_target("lamb") == {32: None, 128: 3.0}
    figure = plots.plot_steps_to_target(result)
    axis = figure.axes[0]
    measured = [line for line in axis.get_lines() if line.get_label() == "LAMB, lr grid"][0]
    assert list(measured.get_xdata()) == [32] and list(measured.get_ydata()) == [11]
    missed = [line for line in axis.get_lines() if line.get_label().startswith("_") and line.get_marker() == "o"
              and list(line.get_xdata()) == [128]]
    assert missed and list(missed[0].get_ydata()) == [4]  # the budget: 512 images / 128 per step, one epoch
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_the_heatmap_marks_a_divergence_and_keeps_a_recovered_runs_accuracy():
    def row(lr, accuracy, diverged, rule="grid"):
        return {"optimizer": "lars", "batch_size": 128, "lr": lr, "lr_rule": rule, "seed": 0,
                "final_test_accuracy": accuracy, "diverged": diverged}

    rows = [row(1.0, 0.97, False, "tuned"), row(8.0, 0.978, True), row(64.0, 0.1, True)]
    figure = plots.plot_lr_batch_heatmaps(rows, vmin=0.9)
    texts = sorted(text.get_text() for text in figure.axes[0].texts)
    assert texts == ["97.0", "97.8✕", "✕"]
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_large_batch_is_registered():
    assert EXPERIMENTS["large_batch"] is large_batch
    assert "large_batch" in plots.FIGURES


# ------------------------------------------------------------------------------ lamb-edu sweep
def run_cli(*args):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "lamb_edu", *args], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=180)


def test_sweep_command_writes_the_table_and_the_heatmap(tmp_path):
    data_dir = real_data_dir()
    out = tmp_path / "sweep"
    result = run_cli("sweep", "--optimizer", "lamb", "--batch-sizes", "64", "256", "--lrs", "0.005", "0.02",
                     "--epochs", "1", "--train-size", "512", "--validation-size", "256", "--hidden", "32",
                     "--weight-decay", "0.01", "--data-dir", data_dir, "--out", str(out))
    assert result.returncode == 0, result.stderr
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(row["batch_size"]), float(row["lr"])) for row in rows] == [(64, 0.005), (64, 0.02), (256, 0.005),
                                                                           (256, 0.02)]
    assert [int(row["steps"]) for row in rows] == [8, 8, 2, 2]
    document = json.loads((out / "sweep.json").read_text())
    assert [run["final_test_accuracy"] for run in document["runs"]] == [float(row["final_test_accuracy"])
                                                                        for row in rows]
    assert document["settings"]["weight_decay"] == 0.01 and document["settings"]["optimizer"] == "lamb"
    assert sum(run["lr_rule"] == "tuned" for run in document["runs"]) == 2
    assert (out / "heatmap.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("arguments, flag", [
    (["--batch-sizes", "100000", "--lrs", "0.01"], "--batch-sizes"),
    (["--batch-sizes", "64", "--lrs"], "--lrs"),
    (["--batch-sizes", "64", "--lrs", "0.01", "--accumulate", "0"], "--accumulate"),
    (["--batch-sizes", "64", "--lrs", "-1"], "--lrs"),
    (["--optimizer", "adamax", "--batch-sizes", "64", "--lrs", "0.01"], "--optimizer"),
    (["--optimizer", "adamw", "--batch-sizes", "64", "--lrs", "0.01", "--momentum", "0.9"], "--momentum"),
])
def test_sweep_command_refuses_bad_input_in_one_line(arguments, flag, tmp_path):
    real_data_dir()
    result = run_cli("sweep", "--epochs", "1", "--train-size", "512", "--out", str(tmp_path / "out"), *arguments)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert flag in lines[-1] and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "sweep.csv").exists()
