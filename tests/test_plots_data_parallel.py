"""The scaling figure starts its lines at the one-process reference (mode "single" when the benchmark measured it)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from lamb_edu import plots


def run(mode, ranks, images_per_second):
    return {"mode": mode, "ranks": ranks, "images_per_second": images_per_second, "step_seconds": 1.0,
            "compute_seconds": 0.5, "exposed_communication_seconds": 0.2, "optimizer_seconds": 0.3}


def lines_of(figure):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in figure.axes[1].lines}


def test_scaling_lines_start_at_the_single_process():
    runs = [run("single", 1, 100.0), run("plain", 1, 95.0), run("plain", 2, 150.0), run("sharded", 2, 160.0),
            run("plain", 4, 120.0), run("sharded", 4, 130.0)]
    figure = plots.plot_scaling(runs)
    lines = lines_of(figure)
    assert lines["measured, plain"] == ([1, 2, 4], [100.0, 150.0, 120.0])
    assert lines["measured, sharded"] == ([1, 2, 4], [100.0, 160.0, 130.0])
    assert lines["perfect scaling"] == ([1, 2, 4], [100.0, 200.0, 400.0])
    assert len(figure.axes[0].get_xticks()) == len(runs)  # a bar for every run, the plain one on 1 rank included
    plt.close(figure)


def test_without_a_single_run_plain_on_one_rank_is_the_reference():
    figure = plots.plot_scaling([run("plain", 1, 90.0), run("plain", 2, 150.0), run("sharded", 2, 160.0)])
    lines = lines_of(figure)
    assert lines["measured, plain"] == ([1, 2], [90.0, 150.0])
    assert lines["perfect scaling"] == ([1, 2], [90.0, 180.0])
    plt.close(figure)
