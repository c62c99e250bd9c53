"""The large-batch study's two tuning protocols, the steps-to-target measure, and reading old run tables."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from lamb_edu import optim
from lamb_edu.experiments import large_batch
from lamb_edu.experiments.batch_run import RUN_FIELDS, BatchRun
from lamb_edu.experiments.batch_sweep import RunQueue, evaluation_steps, study_data, train_at_batch
from lamb_edu.experiments.critical_batch import best_steps, critical_batch_size, steps_space
from lamb_edu.experiments.large_batch_result import LargeBatchResult
from lamb_edu.experiments.large_batch_settings import FULL, LargeBatchSettings
from lamb_edu.experiments.study_optimizers import STUDY_OPTIMIZERS
from lamb_edu.experiments.tuning import SearchSpace
from tests.test_large_batch import small_mlp, synthetic_mnist

SETTINGS = LargeBatchSettings(
    batch_sizes=(32, 128), epochs=1, train_size=256, validation_size=128, test_size=100, target=0.5, curve_size=64,
    optimizers=tuple(replace(o, grid=o.grid[2:6:2]) for o in STUDY_OPTIMIZERS[2:]), repeat_seeds=(1, 2), trials=3,
    tuning_batch_sizes=(128,), steps_trials=2, hidden=(16,))


def _study(monkeypatch, mnist):
    monkeypatch.setattr("lamb_edu.data.load_mnist", lambda data_dir=None: mnist)
    return large_batch(settings=SETTINGS, workers=0)  # synthetic digits live in this process only


@pytest.fixture(scope="module")
def study_and_scrambled():
    """The tiny study on synthetic digits, and again with the test labels shuffled."""
    mnist = synthetic_mnist(384, 100)
    scrambled = mnist._replace(test_labels=np.random.default_rng(1).permutation(mnist.test_labels))
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _study(monkeypatch, mnist), _study(monkeypatch, scrambled)


def _choices(result):
    return [(run.protocol, run.optimizer, run.batch_size, run.lr_rule, run.trial, run.lr, json.dumps(run.settings))
            for run in result.runs]


@pytest.mark.slow
def test_selection_never_reads_the_test_set(study_and_scrambled):
    study, scrambled = study_and_scrambled
    assert _choices(study) == _choices(scrambled)  # every choice of every protocol is the same
    assert [run.validation_accuracy for run in study.runs] == [run.validation_accuracy for run in scrambled.runs]
    full = [r for r in study.runs if not math.isnan(r.final_test_accuracy)]
    assert any(a.final_test_accuracy != b.final_test_accuracy for a, b in zip(full, scrambled.runs))


def test_the_quasi_random_protocol_records_trials_choice_and_report(study_and_scrambled):
    study, _ = study_and_scrambled
    for o in study.optimizers:
        trials = study.select(o.name, ("trial", "tuned"), 0, 128, protocol="quasi_random")
        assert [run.trial for run in trials] == [0, 1, 2]
        assert [run.settings for run in trials] == [{k: v for k, v in d.items() if k != "lr"}
                                                    for d in o.space.draw(3, SETTINGS.draw_seed)]
        (chosen,) = [run for run in trials if run.lr_rule == "tuned"]
        assert chosen.validation_accuracy == max(run.validation_accuracy for run in trials)
        reports = study.select(o.name, "tuned", batch_size=128, protocol="quasi_random", report=True)
        assert sorted(run.seed for run in reports) == [1, 2]
        assert all(run.lr == chosen.lr and run.settings == chosen.settings for run in reports)
        assert study.accuracy(o.name, "tuned", protocol="quasi_random")[128] == [r.final_test_accuracy for r in reports]
        assert study.select(o.name, batch_size=32, protocol="quasi_random") == []  # not a tuned batch size


def test_the_reported_lr_grid_accuracy_leaves_out_the_selection_seed(study_and_scrambled):
    study, _ = study_and_scrambled
    for batch in SETTINGS.batch_sizes:
        seeds = [run.seed for run in study.select("lamb", "tuned", batch_size=batch, report=True)]
        assert seeds == [1, 2]
        assert study.accuracy("lamb", "tuned")[batch] == [
            run.final_test_accuracy for run in study.select("lamb", "tuned", batch_size=batch) if run.seed != 0]


def test_the_summary_reports_trials_space_and_best_settings_and_comes_back(study_and_scrambled):
    study, _ = study_and_scrambled
    summary = json.loads(json.dumps(study.summary()))
    assert summary["trials"] == 3 and summary["tuning_batch_sizes"] == [128] and summary["selection_seed"] == 0
    lamb = summary["optimizers"]["lamb"]
    assert SearchSpace.from_description(lamb["space"]) == STUDY_OPTIMIZERS[3].space
    chosen = study.chosen("lamb", "quasi_random")[128]
    assert lamb["quasi_random_best"]["128"] == {"trial": chosen.trial, "lr": chosen.lr, "settings": chosen.settings,
                                                "validation_accuracy": chosen.validation_accuracy}
    assert {row["protocol"] for row in summary["runs"]} == {"lr_grid", "quasi_random", "steps_to_target"}
    assert all(set(row) == set(RUN_FIELDS) for row in summary["runs"])
    back = LargeBatchResult.from_summary(summary)
    assert _choices(back) == _choices(study)
    assert back.gap_closed("lamb") == study.gap_closed("lamb") and back.critical_batch("lars") == \
        study.critical_batch("lars")


def test_the_steps_measure_keeps_each_cells_fewest_steps(study_and_scrambled):
    study, _ = study_and_scrambled
    for o in study.optimizers:
        for batch in SETTINGS.batch_sizes:
            cell = study.select(o.name, batch_size=batch, protocol="steps_to_target")
            assert [run.trial for run in cell] == [0, 1] and sum(run.lr_rule == "tuned" for run in cell) == 1
            reached = [run.steps_to_target for run in cell if run.steps_to_target is not None]
            assert study.best_steps(o.name)[batch] == (min(reached) if reached else None)
            assert all(set(run.settings) == {"one_minus_beta1", "warmup_share", "weight_decay", "eps"} for run in cell)


def test_the_figures_show_both_protocols(study_and_scrambled):
    import matplotlib.pyplot as plt

    from lamb_edu import plots

    study, _ = study_and_scrambled
    figures = plots.experiment_figures("large_batch", study)
    assert "large_batch_trials.png" in figures
    axis = figures["large_batch_accuracy.png"].axes[0]
    (star,) = [line for line in axis.get_lines() if line.get_label() == "LAMB, quasi-random"]
    assert list(star.get_xdata()) == [128]
    reported = study.accuracy("lamb", "tuned", protocol="quasi_random")[128]
    assert star.get_ydata()[0] == pytest.approx(100 * np.mean(reported))
    assert any(line.get_label() == "sqrt-scaled lr, seed 0" for line in axis.get_lines())
    trials_axis = figures["large_batch_trials.png"].axes[1]  # LAMB
    crosses = [line for line in trials_axis.get_lines() if line.get_marker() in ("x", "*") and len(line.get_xdata())
               and not line.get_label().startswith(("quasi", "chosen"))]
    assert sorted(line.get_xdata()[0] for line in crosses) == sorted(
        run.lr for run in study.select("lamb", ("trial", "tuned"), 0, 128, protocol="quasi_random"))
    steps_axis = figures["large_batch_steps.png"].axes[0]
    assert any(f"critical batch {study.critical_batch('lamb')}" in line.get_label() for line in steps_axis.get_lines())
    for figure in figures.values():
        plt.close(figure)


def test_the_region_view_reads_the_stored_table_and_refuses_a_bad_pick(study_and_scrambled, monkeypatch):
    import matplotlib.pyplot as plt

    from lamb_edu.plots.large_batch import plot_region

    study, _ = study_and_scrambled
    monkeypatch.setattr("lamb_edu.experiments.batch_sweep.train_at_batch", lambda *a, **k: pytest.fail("trained"))
    figure = plot_region(study, "lamb", 128, threshold=0.3)
    (grid,) = [line for line in figure.axes[0].get_lines() if line.get_label().startswith("lr grid")]
    runs = sorted(study.select("lamb", ("grid", "tuned"), 0, 128), key=lambda run: run.lr)
    assert list(grid.get_ydata()) == [100 * run.final_test_accuracy for run in runs]
    plt.close(figure)
    with pytest.raises(ValueError, match="batch size"):
        plot_region(study, "lamb", 100)
    with pytest.raises(ValueError, match="'adam'"):
        plot_region(study, "adam", 128)


# ------------------------------------------------------------------------------ the pieces
def test_a_run_can_stop_at_the_target_or_at_a_step_cap():
    split = study_data(synthetic_mnist(320, 50), 256, 64)
    make = lambda p, lr: optim.LAMB(p, lr=lr)  # noqa: E731
    full = train_at_batch(small_mlp, make, split, optimizer="lamb", batch_size=16, lr=0.02, epochs=2, target=0.5,
                          per_doubling=16)
    assert full.eval_steps == evaluation_steps(32, 16) and full.steps_to_target is not None
    early = train_at_batch(small_mlp, make, split, optimizer="lamb", batch_size=16, lr=0.02, epochs=2, target=0.5,
                           per_doubling=16, stop_at_target=True)
    assert early.steps == early.steps_to_target == full.steps_to_target  # the same run, stopped there
    assert math.isnan(early.final_test_accuracy)
    capped = train_at_batch(small_mlp, make, split, optimizer="lamb", batch_size=16, lr=0.02, epochs=2, target=1.1,
                            max_steps=5)
    assert capped.steps == 5 and capped.steps_to_target is None


def test_critical_batch_size_by_hand():
    # 128 -> 512 cuts the steps 4x (scales), 512 -> 2048 only 1.5x (< 2x: stops)
    assert critical_batch_size({128: 400, 512: 100, 2048: 67, 8192: 20}) == 512
    assert critical_batch_size({128: 400, 512: 200, 2048: 100}) == 2048  # exactly half the perfect speed-up
    assert critical_batch_size({128: 400, 512: 100, 2048: None}) == 512
    assert critical_batch_size({128: None, 512: 100}) is None
    assert critical_batch_size({128: 400, 512: 300}) == 128


def test_best_steps_reads_the_steps_protocol_only():
    def run(protocol, steps):
        return BatchRun("lamb", 64, 0.01, "trial", 0, 1, 8, 1, 0.9, 0.9, 0.9, 0.5, steps, 1.0, False, "learned",
                        protocol=protocol)

    runs = [run("steps_to_target", 7), run("steps_to_target", None), run("lr_grid", 2), run("steps_to_target", 5)]
    assert best_steps(runs, "lamb", (64, 128)) == {64: 5}
    assert best_steps(runs[1:3], "lamb", (64,)) == {64: None}


def test_steps_space_tunes_lr_momentum_and_warmup_only():
    space = steps_space(STUDY_OPTIMIZERS[1])
    assert [d.name for d in space.dimensions] == ["lr", "one_minus_beta1", "warmup_share"]
    assert space.fixed == {"weight_decay": 0.01, "eps": 1e-6}


def test_the_tuned_optimizers_take_the_trial_settings():
    parameters = small_mlp(0).parameters()
    settings = {"one_minus_beta1": 0.2, "warmup_share": 0.1, "weight_decay": 1e-3, "eps": 1e-7}
    sgd, adamw = (o.make_tuned(parameters, 0.1, settings) for o in STUDY_OPTIMIZERS[:2])
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.8) and sgd.param_groups[0]["nesterov"]
    assert sgd.param_groups[0]["weight_decay"] == 1e-3
    assert adamw.param_groups[0]["betas"] == pytest.approx((0.8, 0.999)) and adamw.param_groups[0]["eps"] == 1e-7


def test_full_settings_cover_every_optimizer_with_a_space():
    assert all(o.space is not None and o.space.dimensions[0].name == "lr" for o in FULL.optimizers)
    assert FULL.trials >= 1 and set(FULL.tuned_batch_sizes) <= set(FULL.batch_sizes) and FULL.repeat_seeds == (1, 2)


def test_a_journal_resumes_without_training_again(tmp_path, monkeypatch):
    split = study_data(synthetic_mnist(320, 50), 256, 64)
    make = lambda p, lr: optim.SGD(p, lr=lr)  # noqa: E731
    journal = tmp_path / "runs.jsonl"
    first = RunQueue(small_mlp, split, epochs=1, journal=journal).run("sgd", make, 64, 0.1, settings={"a": 1.0})
    with open(journal, "a") as handle:
        handle.write('{"optimizer": "sgd", "batch')  # a line cut short by an interrupted study
    monkeypatch.setattr("lamb_edu.experiments.batch_sweep.train_at_batch", lambda *a, **k: pytest.fail("trained"))
    again = RunQueue(small_mlp, split, epochs=1, journal=journal).run("sgd", make, 64, 0.1, 0, "tuned",
                                                                      protocol="quasi_random", trial=2,
                                                                      settings={"a": 1.0})
    assert again.validation_accuracy == first.validation_accuracy and again.eval_accuracy == first.eval_accuracy
    assert (again.protocol, again.lr_rule, again.trial, again.settings) == ("quasi_random", "tuned", 2, {"a": 1.0})


def test_an_old_run_table_reads_as_lr_grid_runs_and_nonfinite_step_as_diverged():
    row = {key: value for key, value in BatchRun("sgd", 128, 0.1, "tuned", 0, 10, 3840, 384, 0.98, 0.98, 0.98, 0.95,
                                                  300, 8.0, False, "learned").row().items()
           if key not in ("protocol", "trial", "settings")}
    old = BatchRun.from_row(row)
    assert (old.protocol, old.trial, old.settings) == ("lr_grid", None, {})
    newer = {key: value for key, value in row.items() if key != "diverged"}
    assert not BatchRun.from_row({**newer, "nonfinite_step": None}).diverged
    assert BatchRun.from_row({**newer, "nonfinite_step": 17, "status": "diverged"}).diverged
    assert math.isnan(BatchRun.from_row({**row, "final_test_accuracy": None}).final_test_accuracy)
