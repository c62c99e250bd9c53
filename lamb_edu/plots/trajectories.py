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
    "optimizer_color",
    "plot_vector_layers",
    "plot_vector_layers_comparison",
    "sgd_to_lamb_figures",
]

TRAJECTORY_PANELS = ("SGD", "momentum", "Adam", "AdamW", "LARS", "LAMB")
OPTIMIZER_COLORS = {
    "SGD": "tab:gray", "momentum": "tab:brown", "Adam": "tab:blue", "AdamW": "tab:cyan",
    "LARS": "tab:green", "LAMB": "tab:red", "LAMB without trust ratio": "tab:purple",
}


def plot_two_layer_trajectories(result: Any, names: Any = TRAJECTORY_PANELS) -> Any:
    """Experiment 2: each optimizer's path on the two-layer loss, in each layer's own units.

    Axes are weight / optimum for layer A and layer B, so the loss contours are circles and the
    optimum is (1, 1); ``result`` is an ``experiments.TrajectoryResult``; ``names`` picks the panels.
    """
    names = list(names)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 4.3 * rows), constrained_layout=True,
                                sharex=True, sharey=True, squeeze=False)
    figure.suptitle(f"Paths on L(a, b) = ½((a − 4)/4)² + ½((b − 0.04)/0.04)², "
                    f"{result.steps} steps from a = 1, b = 0.01")
    grid = np.linspace(0, 2, 201)
    x, y = np.meshgrid(grid, grid)
    for axis in axes.ravel()[len(names):]:
        axis.set_visible(False)
    for index, (axis, name) in enumerate(zip(axes.ravel(), names)):
        axis.contour(x, y, 0.5 * (x - 1) ** 2 + 0.5 * (y - 1) ** 2, levels=[0.005, 0.02, 0.08, 0.2, 0.4], colors="0.8")
        relative = result.weights[name] / result.optima
        axis.plot(relative[:, 0], relative[:, 1], "-o", markersize=2.5, linewidth=1, color=optimizer_color(name, index))
        axis.plot(*relative[0], "ks", markersize=6, label="start")
        axis.plot(1, 1, "k*", markersize=12, label="optimum")
        reached = result.steps_to_reach(name)
        settings = ", ".join(f"{key}={value}" for key, value in result.settings[name].items() if key != "optimizer")
        progress = (f"within 10 % of the optimum from step {reached}" if reached is not None
                    else f"not within 10 % after {result.steps} steps")
        axis.set_title(f"{name} ({settings})\n{progress}", fontsize=10)
        axis.set_xlabel("layer A weight / its optimum 4")
        axis.set_ylabel("layer B weight / its optimum 0.04")
        axis.set_xlim(0, 2)
        axis.set_ylim(0, 2)
        axis.set_aspect("equal")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    return figure


def optimizer_color(name: str, index: int) -> str:
    """The colour of optimizer ``name`` (``OPTIMIZER_COLORS``), or the ``index``-th default colour for others."""
    return OPTIMIZER_COLORS.get(name, f"C{index % 10}")


def plot_two_layer_convergence(result: Any, names: Any = TRAJECTORY_PANELS) -> Any:
    """Experiment 2: distance to the optimum, in each layer's own units, against the step."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True, sharey=True)
    figure.suptitle("Distance to the optimum per layer: |w − w*| / w*")
    for index, axis in enumerate(axes):
        for number, name in enumerate(names):
            axis.semilogy(result.relative_error(name)[:, index], color=optimizer_color(name, number), label=name)
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



def plot_vector_layers(run: dict[str, Any]) -> Any:
    """LAMB on two vector layers (``experiments.lamb_on_vector_layers``): r, ‖w‖ and ‖Δw‖ against lr·φ(‖w‖), per layer.

    The dotted line in the last panel is lr·min(‖w‖, clamp), the step LAMB's rule promises.
    """
    clamp = run["clamp_value"]
    figure, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
    figure.suptitle(f"LAMB on two vector layers, {len(run['trust_ratio'])} steps: lr {run['lr']} decaying to 0, "
                    f"weight decay {run['weight_decay']}, clamp {clamp}")
    lr = run["lr"] * (1.0 - np.arange(len(run["trust_ratio"])) / len(run["trust_ratio"]))
    for index, layer in enumerate(run["layers"]):
        color = ("tab:blue", "tab:orange")[index]
        axes[0].semilogy(run["relative_error"][:, index], color=color, label=layer)
        axes[1].semilogy(run["trust_ratio"][:, index], color=color, label=layer)
        axes[2].semilogy(run["weight_norm"][:, index], color=color, label=layer)
        axes[3].semilogy(run["step_norm"][:, index], color=color, label=f"{layer}: ‖Δw‖")
        phi = run["weight_norm"][:, index] if clamp is None else np.minimum(run["weight_norm"][:, index], clamp)
        axes[3].semilogy(lr * phi, ":", color="0.2" if index == 0 else "0.5", label=f"{layer}: lr·φ(‖w‖)")
    if clamp is not None:
        axes[2].axhline(clamp, color="tab:red", linestyle="--", label=f"clamp {clamp}")
    titles = ("distance ‖w − w*‖ / ‖w*‖", "trust ratio r = φ(‖w‖)/‖u‖", "weight norm ‖w‖", "step ‖Δw‖")
    for axis, title in zip(axes, titles):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    return figure


def plot_vector_layers_comparison(runs: dict[str, dict[str, Any]]) -> Any:
    """Optimizers on two vector layers (``experiments.vector_layers_comparison``): ‖w − w*‖/‖w*‖ per layer, per step."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True, sharey=True)
    size = len(next(iter(runs.values()))["relative_error"]) - 1
    figure.suptitle("Two layers of 50 weights, 100x apart in scale, mixed curvature: "
                    f"distance to the optimum ({size} steps)")
    for index, axis in enumerate(axes):
        for number, (name, run) in enumerate(runs.items()):
            axis.semilogy(run["relative_error"][:, index], color=optimizer_color(name, number),
                          linestyle="--" if "without" in name else "-", label=f"{name} (lr {run['settings']['lr']:g})")
        axis.set_title(next(iter(runs.values()))["layers"][index])
        axis.set_xlabel("step")
        axis.set_ylabel("‖w − w*‖ / ‖w*‖")
        axis.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=8)
    return figure


def sgd_to_lamb_figures(result: Any) -> dict[str, Any]:
    """The figures of experiment 2, by file name."""
    return {
        "sgd_to_lamb_paths.png": plot_two_layer_trajectories(result),
        "sgd_to_lamb_convergence.png": plot_two_layer_convergence(result),
        "sgd_to_lamb_trust_ratio.png": plot_two_layer_trust_ratio(result),
    }
