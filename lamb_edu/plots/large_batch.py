"""The large-batch study: accuracy against batch size, lr × batch-size heatmaps, steps to a target, the trials.

``plot_accuracy_vs_batch``, ``plot_steps_to_target``, ``plot_trials`` and ``plot_region`` take an
``experiments.LargeBatchResult``; ``plot_lr_batch_heatmaps`` takes rows of the run table (dicts, as
``result.table()`` or the JSON written by ``lamb-edu sweep``), so it draws any sweep.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from lamb_edu.backend import np  # plots read host numbers only
from lamb_edu.plots.trajectories import OPTIMIZER_COLORS

__all__ = ["BATCH_COLORS", "batch_color", "plot_accuracy_vs_batch", "plot_lr_batch_heatmaps", "plot_steps_to_target",
           "plot_trials", "plot_region", "large_batch_figures"]

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
            f"{100 * s.warmup_fraction:g} % (lr grid) then linear decay" + (" (quick mode)" if result.quick else ""))


def plot_accuracy_vs_batch(result: Any) -> Any:
    """Final test accuracy against batch size, one colour per optimizer, both tuning protocols.

    Solid: the lr grid's tuned lr; ★ on a dotted line: the quasi-random protocol's chosen setting (where it ran);
    both the mean of the report seeds, which leave out seed 0 (the seed the choice was made on), the
    bar spanning their lowest and highest accuracy. Dashed: the rule-scaled lr, seed 0 only. The axis
    fits the tuned runs; a rule-scaled run far below them is drawn as ▼ on the bottom edge with its
    accuracy written above it, one line per optimizer in its colour.
    """
    figure, axis = plt.subplots(figsize=(8.5, 5.5), constrained_layout=True)
    tuned = [run.final_test_accuracy for run in result.select(lr_rule="tuned", protocol=None, report=True)
             if run.protocol != "steps_to_target"]
    bottom = max(0.0, 100 * min(tuned, default=0.0) - 6)
    below_axis: dict[int, int] = {}  # batch size -> labels written under the axis there so far
    for study_optimizer in result.optimizers:
        color = batch_color(study_optimizer.name)
        for protocol, rule, style in (("lr_grid", "tuned", "-"), ("lr_grid", "scaled", "--"),
                                      ("quasi_random", "tuned", "*")):
            per_batch = result.accuracy(study_optimizer.name, rule, protocol=protocol)
            batches = [b for b in result.batch_sizes if per_batch[b]]
            if not batches:
                continue
            values = [100 * np.asarray(per_batch[b]) for b in batches]
            mean = np.array([v.mean() for v in values])
            label = {"-": f"{study_optimizer.label}, lr grid", "--": f"{study_optimizer.rule}-scaled lr, seed 0",
                     "*": f"{study_optimizer.label}, quasi-random"}[style]
            axis.plot(batches, np.maximum(mean, bottom), style if style != "*" else ":", color=color,
                      marker={"-": "o", "--": "s", "*": "*"}[style], markersize=11 if style == "*" else 4, label=label,
                      linewidth=1.6 if style == "-" else 1.1)
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
                   + (f"\ntuned: mean of report seeds {', '.join(map(str, repeats))} (chosen on seed 0; bars: lowest "
                      "to highest)" if repeats else "") + "; ▼: below the axis", fontsize=10)
    axis.legend(fontsize=7, ncol=3)
    return figure


def plot_lr_batch_heatmaps(rows: Sequence[dict[str, Any]], title: str = "", vmin: float = 0.9,
                           labels: dict[str, str] | None = None) -> Any:
    """Per optimizer, final test accuracy over learning rate (rows) × batch size (columns).

    Reads the seed-0 runs of the lr grid (``lr_rule`` "grid" or "tuned"); the tuned cell of each column is
    boxed, a diverged run is marked ✕ (after its accuracy where it recovered into the coloured range),
    and where the rows hold "scaled" runs a dashed white line follows the rule-scaled lr. Accuracies
    below ``vmin`` are grey: the coloured region is where it trains.
    ``labels`` names the panels (default: the optimizer names of the rows).
    """
    rows = [row for row in rows if row.get("protocol", "lr_grid") == "lr_grid"]  # the grid, not the trials
    names = list(dict.fromkeys(row["optimizer"] for row in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1, 4.6), squeeze=False,
                                constrained_layout=True)
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
    """Steps to reach the target validation accuracy against batch size, on log-log axes.

    Solid: the lr grid's tuned runs (tuned for final accuracy), the median over the report seeds, a
    seed that missed the target counting as never (so one lucky seed does not make a point). Dashed
    ▲: the steps-to-target measure, each batch size tuned for the fewest steps (Shallue et al.), with
    the critical batch size in the legend. Dotted, the ideal line from the smallest batch: twice the
    batch, half the steps. The grey line is the budget, every step the epochs allow; an open marker on
    it means the target was not reached.
    """
    figure, axis = plt.subplots(figsize=(8.5, 5.5), constrained_layout=True)
    batches = np.asarray(result.batch_sizes, dtype=float)
    budget = dict(zip(result.batch_sizes, result.settings.epochs * np.ceil(result.settings.train_size / batches)))
    axis.plot(batches, list(budget.values()), color="0.5", linewidth=2, alpha=0.6,
              label="budget: every step of the epochs")
    for study_optimizer in result.optimizers:
        color = batch_color(study_optimizer.name)
        measures = ((result.steps_to_target(study_optimizer.name), "-o", f"{study_optimizer.label}, lr grid"),
                    (result.best_steps(study_optimizer.name), "--^", f"{study_optimizer.label}, tuned for steps "
                     f"(critical batch {result.critical_batch(study_optimizer.name)})"))
        for steps, style, label in measures:
            reached = [(b, value) for b, value in steps.items() if value is not None]
            missed = [(b, budget[b]) for b, value in steps.items() if value is None]
            if reached:
                axis.plot(*zip(*reached), style, color=color, markersize=5, label=label)
            if missed:
                axis.plot(*zip(*missed), style[-1], markerfacecolor="none", color=color, markersize=8)
        first = next(((b, value) for b, value in result.steps_to_target(study_optimizer.name).items()
                      if value is not None), None)
        if first:
            axis.plot(batches, first[1] * first[0] / batches, ":", color=color, linewidth=1)
    axis.plot([], [], ":", color="0.3", label="ideal: twice the batch, half the steps")
    axis.plot([], [], "o", markerfacecolor="none", color="0.3", label="target not reached")
    _batch_axis(axis, result.batch_sizes)
    axis.set_yscale("log")
    axis.set_ylabel(f"steps to {100 * result.settings.target:g} % validation accuracy")
    axis.set_title(f"Steps to the target against batch size\n{_mode(result)}", fontsize=10)
    axis.legend(fontsize=7)
    return figure


def plot_trials(result: Any, batch_size: int | None = None) -> Any:
    """Per optimizer, validation accuracy against the lr of every setting tried at one batch size (seed 0).

    Line and dots: the lr grid (every other knob at its default, warm-up 10 %); crosses: the
    quasi-random trials (the other knobs drawn too), the chosen one starred, each labelled with its
    1 - β1 and warm-up share. ``batch_size`` defaults to the largest the quasi-random protocol covered.
    """
    covered = sorted({run.batch_size for run in result.select(protocol="quasi_random")})
    batch = batch_size or (covered[-1] if covered else result.batch_sizes[-1])
    figure, axes = plt.subplots(1, len(result.optimizers), figsize=(4.2 * len(result.optimizers), 4.2), squeeze=False,
                                constrained_layout=True)
    for axis, study_optimizer in zip(axes[0], result.optimizers):
        color = batch_color(study_optimizer.name)
        grid = sorted(result.select(study_optimizer.name, ("grid", "tuned"), 0, batch), key=lambda run: run.lr)
        axis.plot([r.lr for r in grid], [100 * r.validation_accuracy for r in grid], "-o", color=color, markersize=4,
                  label="lr grid")
        for run in result.select(study_optimizer.name, ("trial", "tuned"), 0, batch, protocol="quasi_random"):
            chosen = run.lr_rule == "tuned"
            axis.plot(run.lr, 100 * run.validation_accuracy, "*" if chosen else "x", color=color,
                      markersize=13 if chosen else 7)
            axis.annotate(f"{run.settings['one_minus_beta1']:.2g}, {100 * run.settings['warmup_share']:.0f}%",
                          (run.lr, 100 * run.validation_accuracy), xytext=(4, 3), textcoords="offset points",
                          fontsize=6)
        axis.plot([], [], "x", color=color, label="quasi-random trial (1-β1, warm-up)")
        axis.plot([], [], "*", color=color, markersize=10, label="chosen trial")
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # decades only: the minor labels overlap
        axis.set_ylim(max(0.0, axis.get_ylim()[0]), 100)
        axis.set_xlabel("peak learning rate")
        axis.set_ylabel("validation accuracy (%)")
        axis.set_title(study_optimizer.label, fontsize=10)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(f"Every setting tried at batch {batch} (seed 0): the lr grid against the quasi-random trials",
                    fontsize=10)
    return figure


def plot_region(result: Any, optimizer: str = "lamb", batch_size: int = 16384, threshold: float = 0.9) -> Any:
    """The region that trains for one optimizer at one batch size, read from the stored run table (no training).

    Dots: the lr grid's final test accuracy per lr (seed 0); the band: the lrs whose run reached
    ``threshold``; red ring: the lr chosen on validation; dashed: the rule-scaled lr; crosses: the
    quasi-random trials at this batch size (their other knobs differ), the chosen one starred.
    """
    names = {o.name: o for o in result.optimizers}
    if optimizer not in names or batch_size not in result.batch_sizes:
        raise ValueError(f"pick an optimizer of {sorted(names)} and a batch size of {list(result.batch_sizes)}; "
                         f"got {optimizer!r}, {batch_size!r}")
    figure, axis = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    color = batch_color(optimizer)
    grid = sorted(result.select(optimizer, ("grid", "tuned"), 0, batch_size), key=lambda run: run.lr)
    lrs, accuracy = [r.lr for r in grid], [100 * r.final_test_accuracy for r in grid]
    axis.plot(lrs, accuracy, "-o", color=color, label="lr grid (other knobs at their defaults)")
    good = [r.lr for r in grid if r.final_test_accuracy >= threshold]
    if good:
        axis.axvspan(min(good) / 2**0.5, max(good) * 2**0.5, color=color, alpha=0.12,
                     label=f"trains: {len(good)} of {len(grid)} grid lrs reach {100 * threshold:g} %")
    for run in grid:
        if run.lr_rule == "tuned":
            axis.plot(run.lr, 100 * run.final_test_accuracy, "o", markersize=14, markerfacecolor="none", color="red",
                      label="chosen on validation")
    for run in result.select(optimizer, "scaled", 0, batch_size):
        axis.axvline(run.lr, linestyle="--", color="0.3", label=f"{names[optimizer].rule}-scaled lr")
    for run in result.select(optimizer, ("trial", "tuned"), 0, batch_size, protocol="quasi_random"):
        axis.plot(run.lr, 100 * run.final_test_accuracy, "*" if run.lr_rule == "tuned" else "x", color="black",
                  markersize=12 if run.lr_rule == "tuned" else 7)
    if result.select(optimizer, batch_size=batch_size, protocol="quasi_random"):
        axis.plot([], [], "x", color="black", label="quasi-random trials (★ chosen)")
    axis.set_xscale("log")
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_ylim(0, 100)
    axis.set_xlabel("peak learning rate")
    axis.set_ylabel("final test accuracy (%), seed 0")
    axis.set_title(f"{names[optimizer].label} at batch {batch_size}", fontsize=10)
    axis.legend(fontsize=7, loc="lower left")
    axis.grid(alpha=0.3)
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
        **({"large_batch_trials.png": plot_trials(result)} if result.select(protocol="quasi_random") else {}),
    }
