"""The large-batch study: accuracy against batch size, lr × batch-size heatmaps, steps to a target.

``plot_accuracy_vs_batch`` and ``plot_steps_to_target`` take an ``experiments.LargeBatchResult``;
``plot_lr_batch_heatmaps`` takes rows of the run table (dicts, as ``result.table()`` or the JSON
written by ``lamb-edu sweep``), so it draws any sweep.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt

from lamb_edu.backend import np  # plots read host numbers only
from lamb_edu.plots.trajectories import OPTIMIZER_COLORS

__all__ = ["BATCH_COLORS", "batch_color", "plot_accuracy_vs_batch", "plot_lr_batch_heatmaps", "plot_steps_to_target",
           "large_batch_figures"]

# One colour per optimizer of the study, as in the two-layer figures (SGD with momentum brown).
BATCH_COLORS = {"sgd": OPTIMIZER_COLORS["momentum"], "adamw": OPTIMIZER_COLORS["Adam"],
                "lars": OPTIMIZER_COLORS["LARS"], "lamb": OPTIMIZER_COLORS["LAMB"]}


def batch_color(name: str) -> str:
    """The colour of optimizer ``name`` in the large-batch figures (grey for one the study does not use)."""
    return BATCH_COLORS.get(name, "tab:gray")


def _batch_axis(axis: Any, batch_sizes: Sequence[int]) -> None:
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(batch_sizes), [str(b) for b in batch_sizes])
    axis.set_xlabel("global batch size (examples per step)")
    axis.grid(alpha=0.3, which="both")


def _mode(result: Any) -> str:
    s = result.settings
    return (f"MLP 784-{'-'.join(map(str, s.hidden))}-10, {s.epochs} epochs of {s.train_size} images, warm-up "
            f"{100 * s.warmup_fraction:g} % then linear decay" + (" (quick mode)" if result.quick else ""))


def plot_accuracy_vs_batch(result: Any) -> Any:
    """Final test accuracy against batch size: tuned lr solid, rule-scaled lr dashed, one colour per optimizer.

    Where the tuned runs were repeated from several seeds the line is their mean and the bar spans
    their lowest and highest accuracy. The axis fits the tuned runs; a rule-scaled run far below them
    is drawn as ▼ on the bottom edge with its accuracy written above it, one line per optimizer in
    its colour, so two runs that fell to the same place stay apart.
    """
    figure, axis = plt.subplots(figsize=(8.5, 5.5), constrained_layout=True)
    tuned = [run.final_test_accuracy for run in result.select(lr_rule="tuned")]
    bottom = max(0.0, 100 * min(tuned, default=0.0) - 6)
    below_axis: dict[int, int] = {}  # batch size -> labels written under the axis there so far
    for study_optimizer in result.optimizers:
        color = batch_color(study_optimizer.name)
        for rule, style in (("tuned", "-"), ("scaled", "--")):
            per_batch = result.accuracy(study_optimizer.name, rule)
            batches = [b for b in result.batch_sizes if per_batch[b]]
            values = [100 * np.asarray(per_batch[b]) for b in batches]
            mean = np.array([v.mean() for v in values])
            label = f"{study_optimizer.label}, {'tuned lr' if rule == 'tuned' else study_optimizer.rule + '-scaled lr'}"
            axis.plot(batches, np.maximum(mean, bottom), style, color=color, marker="o" if rule == "tuned" else "s",
                      markersize=4, label=label, linewidth=1.6 if rule == "tuned" else 1.1)
            for batch, value in zip(batches, mean):
                if value < bottom:
                    axis.plot(batch, bottom, "v", color=color, markersize=9, clip_on=False)
                    stacked = below_axis[batch] = below_axis.get(batch, 0) + 1
                    axis.annotate(f"{value:.0f} %", (batch, bottom), xytext=(7, 9 * stacked - 5),
                                  textcoords="offset points", color=color, fontsize=7)
            if any(len(v) > 1 for v in values):
                low, high = [v.min() for v in values], [v.max() for v in values]
                axis.errorbar(batches, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=color, capsize=3,
                              linewidth=1)
    _batch_axis(axis, result.batch_sizes)
    axis.set_ylim(bottom, 100)
    axis.set_ylabel("final test accuracy (%)")
    repeats = result.settings.repeat_seeds
    axis.set_title("Accuracy against batch size at a fixed budget in epochs\n" + _mode(result)
                   + (f"\ntuned: mean of seeds 0, {', '.join(map(str, repeats))} (bars: lowest to highest)" if repeats else "")
                   + "; ▼: below the axis", fontsize=10)
    axis.legend(fontsize=8, ncol=2)
    return figure


def plot_lr_batch_heatmaps(rows: Sequence[dict[str, Any]], title: str = "", vmin: float = 0.9,
                           labels: dict[str, str] | None = None) -> Any:
    """Per optimizer, final test accuracy over learning rate (rows) × batch size (columns).

    Reads the seed-0 runs with ``lr_rule`` "grid" or "tuned"; the tuned cell of each column is
    boxed, a diverged run is marked ✕ (after its accuracy where it recovered into the coloured range),
    and where the rows hold "scaled" runs a dashed white line follows the rule-scaled lr. Accuracies
    below ``vmin`` are grey: the coloured region is where it trains.
    ``labels`` names the panels (default: the optimizer names of the rows).
    """
    names = list(dict.fromkeys(row["optimizer"] for row in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1, 4.6), squeeze=False, constrained_layout=True)
    colormap = plt.get_cmap("viridis").with_extremes(under="0.82", bad="white")
    for axis, name in zip(axes[0], names):
        grid = [row for row in rows if row["optimizer"] == name and row["lr_rule"] in ("grid", "tuned")
                and row.get("seed", 0) == 0]
        lrs = sorted({row["lr"] for row in grid})
        batches = sorted({row["batch_size"] for row in grid})
        accuracy = np.full((len(lrs), len(batches)), np.nan)
        for row in grid:
            i, j = lrs.index(row["lr"]), batches.index(row["batch_size"])
            accuracy[i, j] = row["final_test_accuracy"]
            text = f"{100 * row['final_test_accuracy']:.1f}"
            if row["diverged"]:  # a sign of divergence on the way, though the run may have recovered
                text = text + "✕" if row["final_test_accuracy"] >= vmin else "✕"
            dark = vmin <= row["final_test_accuracy"] < vmin + 0.6 * (1 - vmin)  # the dark end of viridis
            axis.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
            if row["lr_rule"] == "tuned":
                axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        image = axis.imshow(accuracy, origin="lower", aspect="auto", cmap=colormap, vmin=vmin, vmax=1.0)
        scaled = sorted((row["batch_size"], row["lr"]) for row in rows if row["optimizer"] == name
                        and row["lr_rule"] == "scaled" and row.get("seed", 0) == 0 and row["batch_size"] in batches)
        if scaled and len(lrs) > 1:  # the scaled lr in cell units: interpolate log lr over the rows
            positions = np.interp([math.log(lr) for _, lr in scaled], np.log(lrs), np.arange(len(lrs)),
                                  left=-0.5, right=len(lrs) - 0.5)
            axis.plot([batches.index(b) for b, _ in scaled], positions, "--", color="white", linewidth=1.5)
        axis.set_xticks(range(len(batches)), [str(b) for b in batches])
        axis.set_yticks(range(len(lrs)), [f"{lr:.3g}" for lr in lrs])
        axis.set_xlabel("global batch size")
        axis.set_ylabel("peak learning rate")
        axis.set_title((labels or {}).get(name, name))
    figure.colorbar(image, ax=axes[0].tolist(), label=f"final test accuracy (grey: below {100 * vmin:g} %)",
                    format=lambda value, _: f"{100 * value:.0f}", extend="min")
    figure.suptitle(title or "Final test accuracy over learning rate × batch size (red box: tuned lr; ✕: diverged; "
                    "dashed white: rule-scaled lr)", fontsize=10)
    return figure


def plot_steps_to_target(result: Any) -> Any:
    """Steps to reach the target validation accuracy against batch size (tuned lr), on log-log axes.

    Beside each optimizer, dotted, the ideal line from its smallest batch: twice the batch, half
    the steps. Where the tuned runs were repeated, a point is the median over the seeds, a seed that
    missed the target counting as never (so one lucky seed does not make a point). The grey line is
    the budget, every step the epochs allow; an open marker on it means the median run did not reach
    the target.
    """
    figure, axis = plt.subplots(figsize=(8.5, 5.5), constrained_layout=True)
    batches = np.asarray(result.batch_sizes, dtype=float)
    budget = result.settings.epochs * np.ceil(result.settings.train_size / batches)
    axis.plot(batches, budget, color="0.5", linewidth=2, alpha=0.6, label="budget: every step of the epochs")
    for study_optimizer in result.optimizers:
        color = batch_color(study_optimizer.name)
        medians = result.steps_to_target(study_optimizer.name)
        reached = [(b, steps) for b, steps in medians.items() if steps is not None]
        missed = [(b, budget[i]) for i, b in enumerate(result.batch_sizes) if b in medians and medians[b] is None]
        if reached:
            axis.plot(*zip(*reached), "-o", color=color, markersize=5, label=f"{study_optimizer.label}, tuned lr")
            first_batch, first_steps = reached[0]
            axis.plot(batches, first_steps * first_batch / batches, ":", color=color, linewidth=1)
        if missed:
            axis.plot(*zip(*missed), "o", markerfacecolor="none", color=color, markersize=8)
    axis.plot([], [], ":", color="0.3", label="ideal: twice the batch, half the steps")
    axis.plot([], [], "o", markerfacecolor="none", color="0.3", label="target not reached")
    _batch_axis(axis, result.batch_sizes)
    axis.set_yscale("log")
    axis.set_ylabel(f"steps to {100 * result.settings.target:g} % validation accuracy"
                    + (" (median of the seeds)" if result.settings.repeat_seeds else ""))
    axis.set_title(f"Steps to the target against batch size\n{_mode(result)}", fontsize=10)
    axis.legend(fontsize=8)
    return figure


def large_batch_figures(result: Any) -> dict[str, Any]:
    """The figures of the large-batch study, by file name."""
    title = ("Final test accuracy over peak lr × batch size (red box: tuned lr; ✕: diverged; dashed white: "
             "rule-scaled lr)\n" + _mode(result))
    return {
        "large_batch_accuracy.png": plot_accuracy_vs_batch(result),
        "large_batch_heatmap.png": plot_lr_batch_heatmaps(result.table(), title, vmin=0.8 if result.quick else 0.9,
                                                          labels={o.name: o.label for o in result.optimizers}),
        "large_batch_steps.png": plot_steps_to_target(result),
    }
