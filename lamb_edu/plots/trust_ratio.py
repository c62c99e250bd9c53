"""Per-layer trust ratio r, weight norm r1 = ‖w‖ and ratio denominator r2 through MNIST training.

Each function takes an ``experiments.MnistComparison``. The ridge plots show, at a few logged
steps, the distribution over the network's parameters of one statistic, as the article's
TensorBoard histograms do. r2 is the norm the trust ratio divides by (the recorded
``ratio_denominator``): for LAMB, whose runs these are, the norm ‖u‖ of its update.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from lamb_edu.backend import np
from lamb_edu.plots.colors import setting_color

__all__ = ["TRUST_STATISTICS", "plot_trust_ridges", "plot_trust_per_layer", "plot_weight_norm_ridges",
           "trust_ratio_figures"]

TRUST_STATISTICS = (
    ("trust_ratio", "trust ratio r = φ(r1)/r2 (×)"),
    ("weight_norm", "weight norm r1 = ‖w‖"),
    ("update_norm", "ratio denominator r2 (LAMB: ‖u‖)"),  # the runs' field, recorded as ratio_denominator
)


def _ridges(axis: Any, steps: Any, table: Any, color: str, lo: float, hi: float, ridges: int = 16) -> None:
    """Ridge plot: a smoothed histogram (over layers) of log10(value) at ``ridges`` logged steps.

    ``table`` has a row per logged step and a column per parameter; the first step is at the top,
    as in the article's TensorBoard histograms.
    """
    rows = np.unique(np.linspace(0, len(steps) - 1, min(ridges, len(steps))).round().astype(int))
    grid = np.linspace(lo, hi, 400)
    bandwidth = 0.03 * (hi - lo)
    for depth, row in enumerate(rows):
        values = np.log10(np.clip(table[row][np.isfinite(table[row])], 1e-12, None))
        density = np.exp(-0.5 * ((grid[:, None] - values[None, :]) / bandwidth) ** 2).sum(axis=1)
        density = 0.9 * density / max(density.max(), 1e-12)
        base = len(rows) - 1 - depth
        axis.fill_between(grid, base, base + density, color=color, alpha=0.35, linewidth=0)
        axis.plot(grid, base + density, color=color, linewidth=0.8)
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels([str(int(steps[row])) for row in rows[::-1]], fontsize=7)
    axis.set_ylabel("training step (first at the top)")


def _log_range(tables: list[Any]) -> tuple[float, float]:
    """The range of log10 of the positive finite values of ``tables``, padded by 5 %."""
    values = np.concatenate([table[np.isfinite(table) & (table > 0)] for table in tables])
    lo, hi = np.log10(values.min()), np.log10(values.max())
    pad = 0.05 * max(hi - lo, 0.5)
    return lo - pad, hi + pad


def plot_trust_ridges(comparison: Any, seed_index: int = 0) -> Any:
    """Experiment 3: ridge plots of r, r1 and r2 over the layers, through training (rows: Adam, LAMB).

    Each ridge is the distribution, over the network's parameters (weights and biases), of one
    statistic at one logged step; the x axis is logarithmic and shared within a column.
    """
    labels = [setting.label for setting in comparison.settings]
    figure, axes = plt.subplots(len(labels), 3, figsize=(14, 4.2 * len(labels)), constrained_layout=True,
                                squeeze=False)
    parameters = len(comparison.runs[labels[0]][0].parameter_names)
    figure.suptitle("Per-layer trust ratio r, weight norm r1 and ratio denominator r2 through MNIST training\n"
                    f"{comparison.network_name} (seed {comparison.seeds[seed_index]}; each ridge: distribution over "
                    f"the {parameters} parameters)")
    for column, (key, name) in enumerate(TRUST_STATISTICS):
        tables = [getattr(comparison.runs[label][seed_index], key) for label in labels]
        lo, hi = _log_range(tables)
        for row, label in enumerate(labels):
            run = comparison.runs[label][seed_index]
            axis = axes[row, column]
            _ridges(axis, run.log_steps, tables[row], setting_color(comparison, label), lo, hi)
            if key == "trust_ratio":
                axis.axvline(0.0, color="0.3", linestyle=":", linewidth=1)
            axis.set_title(f"{label}: {name}", fontsize=10)
            axis.set_xlabel(f"log10 of {name.split(' (')[0].split(' = ')[0]}")
    return figure


def plot_trust_per_layer(comparison: Any, seed_index: int = 0) -> Any:
    """Experiment 3: each parameter's r and r1 against the step, for the Adam baseline and for LAMB."""
    labels = [setting.label for setting in comparison.settings]
    figure, axes = plt.subplots(2, len(labels), figsize=(6.5 * len(labels), 8), constrained_layout=True,
                                squeeze=False, sharex=True)
    figure.suptitle(f"Trust ratio and weight norm of every layer: {comparison.network_name} "
                    f"(seed {comparison.seeds[seed_index]})")
    for column, label in enumerate(labels):
        run = comparison.runs[label][seed_index]
        for index, name in enumerate(run.parameter_names):
            style = dict(color=f"C{index}", linestyle="-" if name.endswith("weight") else "--", label=name)
            axes[0, column].semilogy(run.log_steps, run.trust_ratio[:, index], **style)
            axes[1, column].semilogy(run.log_steps, run.weight_norm[:, index], **style)
        axes[0, column].axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        used = "" if run.setting.use_trust_ratio else " (computed, not used)"
        axes[0, column].set_title(f"{label}: trust ratio r{used}")
        axes[0, column].set_ylabel("trust ratio r (×)")
        axes[1, column].set_title(f"{label}: weight norm r1 = ‖w‖")
        axes[1, column].set_ylabel("‖w‖ (Euclidean norm)")
        axes[1, column].set_xlabel("step (one mini-batch of 512)")
        for axis in axes[:, column]:
            axis.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7, ncol=2)
    return figure


def plot_weight_norm_ridges(comparison: Any, seed_index: int = 0) -> Any:
    """Experiment 5: the distribution of the layers' weight norms through training, one panel per setting.

    The x axis (log10 ‖w‖) is shared, so a run whose weights explode reaches far to the right.
    """
    labels = [setting.label for setting in comparison.settings]
    figure, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 5.5), constrained_layout=True,
                                squeeze=False)
    figure.suptitle(f"Weight norms ‖w‖ of the layers through training: {comparison.network_name} "
                    f"(seed {comparison.seeds[seed_index]}; each ridge: distribution over the parameters at one step)")
    tables = [comparison.runs[label][seed_index].weight_norm for label in labels]
    lo, hi = _log_range(tables)
    for axis, label, table in zip(axes[0], labels, tables):
        run = comparison.runs[label][seed_index]
        _ridges(axis, run.log_steps, table, setting_color(comparison, label), lo, hi)
        diverged = run.divergence.status == "diverged"
        verdict = run.divergence.status + (f" at step {run.divergence.step}" if diverged else "")
        axis.set_title(f"{label}\n({verdict})", fontsize=10)
        axis.set_xlabel("log10 ‖w‖")
    return figure



def trust_ratio_figures(comparison: Any) -> dict[str, Any]:
    """The figures of experiment 3, by file name."""
    return {
        "trust_ratio_ridges.png": plot_trust_ridges(comparison),
        "trust_ratio_per_layer.png": plot_trust_per_layer(comparison),
    }
