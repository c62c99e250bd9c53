"""Experiment 2 (from SGD to LAMB): the optimizers' paths on the two-layer loss, and what each step did."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from lamb_edu.backend import np

__all__ = [
    "TRAJECTORY_PANELS",
    "OPTIMIZER_COLORS",
    "plot_two_layer_trajectories",
    "plot_two_layer_convergence",
    "plot_two_layer_trust_ratio",
    "sgd_to_lamb_figures",
]

TRAJECTORY_PANELS = ("SGD", "momentum", "Adam", "AdamW", "LARS", "LAMB")
OPTIMIZER_COLORS = {
    "SGD": "tab:gray", "momentum": "tab:brown", "Adam": "tab:blue", "AdamW": "tab:cyan",
    "LARS": "tab:green", "LAMB": "tab:red", "LAMB without trust ratio": "tab:purple",
}


def plot_two_layer_trajectories(result: Any) -> Any:
    """Experiment 2: each optimizer's path on the two-layer loss, in each layer's own units.

    Axes are weight / optimum for layer A and layer B, so the loss contours are circles and the
    optimum is (1, 1); ``result`` is an ``experiments.TrajectoryResult``.
    """
    figure, axes = plt.subplots(2, 3, figsize=(13, 8.5), constrained_layout=True, sharex=True, sharey=True)
    figure.suptitle(f"Paths on L(a, b) = ½((a − 4)/4)² + ½((b − 0.04)/0.04)², {result.steps} steps from a = 1, b = 0.01")
    grid = np.linspace(0, 2, 201)
    x, y = np.meshgrid(grid, grid)
    for axis, name in zip(axes.ravel(), TRAJECTORY_PANELS):
        axis.contour(x, y, 0.5 * (x - 1) ** 2 + 0.5 * (y - 1) ** 2, levels=[0.005, 0.02, 0.08, 0.2, 0.4], colors="0.8")
        relative = result.weights[name] / result.optima
        axis.plot(relative[:, 0], relative[:, 1], "-o", markersize=2.5, linewidth=1, color=OPTIMIZER_COLORS[name])
        axis.plot(*relative[0], "ks", markersize=6, label="start")
        axis.plot(1, 1, "k*", markersize=12, label="optimum")
        reached = result.steps_to_reach(name)
        settings = ", ".join(f"{key}={value}" for key, value in result.settings[name].items() if key != "optimizer")
        axis.set_title(f"{name} ({settings})\n" + (f"within 10 % of the optimum from step {reached}" if reached is not None
                                                    else f"not within 10 % after {result.steps} steps"), fontsize=10)
        axis.set_xlabel("layer A weight / its optimum 4")
        axis.set_ylabel("layer B weight / its optimum 0.04")
        axis.set_xlim(0, 2)
        axis.set_ylim(0, 2)
        axis.set_aspect("equal")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    return figure


def plot_two_layer_convergence(result: Any) -> Any:
    """Experiment 2: distance to the optimum, in each layer's own units, against the step."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True, sharey=True)
    figure.suptitle("Distance to the optimum per layer: |w − w*| / w*")
    for index, axis in enumerate(axes):
        for name in TRAJECTORY_PANELS:
            axis.semilogy(result.relative_error(name)[:, index], color=OPTIMIZER_COLORS[name], label=name)
        axis.set_title(result.layers[index])
        axis.set_xlabel("step")
        axis.set_ylabel("relative error (fraction of the optimum)")
        axis.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=8)
    return figure


def plot_two_layer_trust_ratio(result: Any, baseline: str = "LAMB without trust ratio") -> Any:
    """Experiment 2: LAMB's trust ratio per layer, and the step it gives each layer against Adam's.

    Left: the trust ratio r = ‖w‖/‖u‖ of each layer (computed by LAMB, and by ``baseline``, which
    computes it but steps with 1). Right: each layer's step as a fraction of its own weight, |Δw|/|w|.
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    figure.suptitle("What the trust ratio does to each layer's step")
    styles = ("-", "--")
    for index, layer in enumerate(result.layers):
        for name in ("LAMB", baseline):
            color = OPTIMIZER_COLORS[name]
            axes[0].semilogy(result.trust_ratio[name][:, index], styles[index], color=color, label=f"{name}: {layer}")
            axes[1].semilogy(result.relative_step(name)[:, index], styles[index], color=color, label=f"{name}: {layer}")
    axes[0].set_title("trust ratio r = ‖w‖ / ‖u‖ (LAMB steps with lr·r·u)")
    axes[0].set_ylabel("trust ratio (×)")
    axes[1].set_title("step as a fraction of the layer's weight")
    axes[1].set_ylabel("|Δw| / |w|")
    for axis in axes:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure



def sgd_to_lamb_figures(result: Any) -> dict[str, Any]:
    """The figures of experiment 2, by file name."""
    return {
        "sgd_to_lamb_paths.png": plot_two_layer_trajectories(result),
        "sgd_to_lamb_convergence.png": plot_two_layer_convergence(result),
        "sgd_to_lamb_trust_ratio.png": plot_two_layer_trust_ratio(result),
    }
