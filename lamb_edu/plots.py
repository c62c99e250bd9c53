"""Figures: functions that take recorded results and draw them with Matplotlib.

Nothing here trains or runs anything; each function reads data that training or an experiment
returned and gives back a ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt


# ----------------------------------------------------------------- experiment figures (experiments.py)
def _beta_panels(title: str) -> tuple[Any, Any]:
    """A 2×2 grid of panels, one per β, under a common title."""
    figure, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    figure.suptitle(title)
    return figure, axes.ravel()


def plot_moving_averages(result: Any, bias_correction: bool = False) -> Any:
    """Experiment 1: the noisy series and its moving average for each β (2×2 panels).

    ``result`` is an ``experiments.DebiasResult``; ``bias_correction`` picks the debiased averages.
    """
    averages = result.debiased if bias_correction else result.average
    kind = "with bias correction m_t / (1 − βᵗ)" if bias_correction else "without bias correction"
    figure, axes = _beta_panels(f"Exponential moving average of a noisy series, {kind}")
    for axis, beta in zip(axes, result.betas):
        axis.scatter(result.x, result.data, s=8, color="0.6", label="data: 1 − (x/3)² + noise")
        axis.plot(result.x, result.curve(), color="0.3", linestyle=":", label="noiseless curve")
        axis.plot(result.x, averages[beta], color="tab:red", linewidth=2, label="moving average")
        axis.set_title(f"β = {beta}")
        axis.set_xlabel("x (sample t = 1 … T from left to right)")
        axis.set_ylabel("value (no unit)")
        axis.set_ylim(-1.2, 1.5)
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower center", fontsize=8)
    return figure


def plot_bias_correction_factor(result: Any) -> Any:
    """Experiment 1: the correction factor 1/(1 − βᵗ) against the step t, one panel per β.

    Each panel has its own y axis, as in the article: the factor starts at 1/(1 − β) and falls to 1.
    """
    figure, axes = _beta_panels("Bias-correction factor 1 / (1 − βᵗ) against the step")
    for axis, beta in zip(axes, result.betas):
        axis.plot(result.steps, result.factor[beta], color="tab:blue", label="1 / (1 − βᵗ)")
        axis.axhline(1.0, color="0.4", linestyle=":", label="1 (no correction)")
        within = result.steps_to_within(beta)
        axis.axvline(within, color="tab:green", linestyle="--", label=f"below 1.01 from t = {within}")
        axis.set_title(f"β = {beta}: factor {result.factor[beta][0]:.3g} at t = 1")
        axis.set_xlabel("step t")
        axis.set_ylabel("correction factor (×)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return figure


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
    from lamb_edu.backend import np

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


# ----------------------------------------------------------------- training curves (train.py, `lamb-edu train`/`plot`)
# A "run" here is a plain dict: label, steps and loss (training loss against the step), epochs and
# test_accuracy (a fraction, per epoch), diverged (False or a step). ``history_run`` makes one from a
# ``train.History`` in memory, ``load_run`` from the files ``lamb-edu train`` wrote.
def history_run(history: Any, label: str) -> dict[str, Any]:
    """A run dict from a ``train.History``: the loss of every step and the test accuracy of every epoch."""
    return {
        "label": label,
        "steps": list(range(1, len(history.step_loss) + 1)),
        "loss": list(history.step_loss),
        "epochs": [record["epoch"] for record in history.epochs],
        "test_accuracy": [record["test_accuracy"] for record in history.epochs],
        "diverged": history.diverged,
    }


def load_run(directory: Any) -> dict[str, Any]:
    """A run dict from a ``lamb-edu train`` output directory (``summary.json`` and ``metrics.jsonl``).

    The loss curve is the mean training loss between logged steps; the dict also carries the
    run's ``settings``. Raises FileNotFoundError naming the missing file.
    """
    import json
    from pathlib import Path

    directory = Path(directory)
    for name in ("summary.json", "metrics.jsonl"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a lamb-edu run directory: {directory / name} is missing")
    summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    steps, loss, epochs, accuracy = [], [], [], []
    for line in (directory / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("type") == "step":
            steps.append(record["step"])
            loss.append(record["loss_avg"])
        elif record.get("type") == "epoch":
            epochs.append(record["epoch"])
            accuracy.append(record["test_accuracy"])
    return {"label": directory.name, "settings": summary.get("settings", {}), "steps": steps, "loss": loss,
            "epochs": epochs, "test_accuracy": accuracy, "diverged": summary.get("diverged", False)}


LABEL_KEYS = ("optimizer", "lr", "batch_size", "weight_decay", "momentum", "nesterov", "beta1", "beta2", "eps",
              "no_bias_correction", "no_trust_ratio", "lookahead", "warmup_steps", "hidden", "seed", "train_size")


def settings_labels(settings: list[dict[str, Any]]) -> list[str]:
    """Legend labels: the optimizer and lr, plus every setting that differs between the runs."""
    # a setting an optimizer does not have is None: it neither differs nor is shown
    differing = [key for key in LABEL_KEYS if len({repr(s.get(key)) for s in settings if s.get(key) is not None}) > 1]
    labels = []
    for entry in settings:
        parts = [str(entry.get("optimizer", "?")), f"lr={entry.get('lr')}"]
        for key in differing:
            if key in ("optimizer", "lr"):
                continue
            value = entry.get(key)
            if value is True:
                parts.append(key.replace("_", "-"))
            elif value is not None and value is not False:
                parts.append(f"{key}={' '.join(map(str, value)) if isinstance(value, list) else value}")
        labels.append(" ".join(parts))
    return labels


def plot_training_curves(runs: list[dict[str, Any]], title: str = "MNIST training") -> Any:
    """Training loss against the step (log scale) and test accuracy against the epoch, one colour per run.

    A diverged run ends its loss curve with an ✕ at the last good step and says so in the legend.
    """
    from matplotlib.ticker import MaxNLocator

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    figure.suptitle(title)
    for index, run in enumerate(runs):
        color = f"C{index % 10}"
        label = run["label"] + (f" (diverged at step {run['diverged']})" if run.get("diverged") else "")
        loss_axis.plot(run["steps"], run["loss"], color=color, linewidth=1, label=label)
        if run.get("diverged") and run["steps"]:
            loss_axis.plot(run["steps"][-1], run["loss"][-1], "x", color=color, markersize=10, markeredgewidth=2)
        percent = [100 * a if a is not None else float("nan") for a in run["test_accuracy"]]
        accuracy_axis.plot(run["epochs"], percent, "-o", color=color, markersize=4, label=label)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step (one mini-batch)")
    loss_axis.set_ylabel("training loss (cross-entropy, nats)")
    loss_axis.set_title("training loss")
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    accuracy_axis.set_ylabel("test accuracy (%)")
    accuracy_axis.set_title("test accuracy after each epoch")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3, which="both")
    if runs:
        accuracy_axis.legend(fontsize=8, loc="lower right")
    return figure


# ----------------------------------------------------------------- MNIST experiment figures (experiments.py)
# Each takes an ``experiments.MnistComparison``. Colours follow the article: Adam blue, LAMB red.
SETTING_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")
TRUST_STATISTICS = (
    ("trust_ratio", "trust ratio r = φ(‖w‖)/‖u‖ (×)"),
    ("weight_norm", "weight norm r1 = ‖w‖"),
    ("update_norm", "update norm r2 = ‖u‖"),
)


def _setting_color(comparison: Any, label: str) -> str:
    labels = [setting.label for setting in comparison.settings]
    if len(labels) == 2 and label.startswith(("Adam", "LAMB")):
        return "tab:blue" if label.startswith("Adam") else "tab:red"
    return SETTING_COLORS[labels.index(label) % len(SETTING_COLORS)]


def plot_mnist_comparison(comparison: Any, title: str, window: int = 20) -> Any:
    """Training loss (mean of the last ``window`` steps) and test accuracy against the step, per seed.

    One colour per setting; seed 0 is drawn solid, other seeds dashed and lighter. A run judged
    "diverged" by ``experiments.detect_divergence`` gets an ✕ at the step of the first sign.
    """
    from lamb_edu.experiments import CHANCE_LOSS, smoothed_loss

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    seeds = ("seeds " if len(comparison.seeds) > 1 else "seed ") + ", ".join(str(seed) for seed in comparison.seeds)
    figure.suptitle(f"{title}\nMLP {'-'.join(map(str, comparison.network))}, {comparison.train_size} training examples, "
                    f"{seeds}" + (" (first solid, others dashed)" if len(comparison.seeds) > 1 else "")
                    + (" (quick mode)" if comparison.quick else ""))
    for setting in comparison.settings:
        color = _setting_color(comparison, setting.label)
        for index, run in enumerate(comparison.runs[setting.label]):
            style = dict(color=color, linewidth=1.3 if index == 0 else 0.9, alpha=1.0 if index == 0 else 0.55,
                         linestyle="-" if index == 0 else "--")
            label = setting.label if index == 0 else None
            steps = range(1, run.step_loss.size + 1)
            loss_axis.plot(steps, smoothed_loss(run.step_loss, window), label=label, **style)
            accuracy_axis.plot(run.epoch_steps, 100 * run.test_accuracy, marker="o", markersize=3, label=label, **style)
            if run.divergence.status == "diverged":
                step = min(run.divergence.step, run.step_loss.size)
                loss_axis.plot(step, smoothed_loss(run.step_loss, window)[step - 1], "x", color=color, markersize=10,
                               markeredgewidth=2)
    loss_axis.axhline(CHANCE_LOSS, color="0.4", linestyle=":", label="chance level ln 10 = 2.30")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step (one mini-batch of 512)")
    loss_axis.set_ylabel(f"training loss, mean of last {window} steps (nats)")
    loss_axis.set_title("training loss (✕: first sign of divergence)")
    accuracy_axis.set_xlabel("step (one mini-batch of 512)")
    accuracy_axis.set_ylabel("test accuracy (%)")
    accuracy_axis.set_title("test accuracy after each epoch")
    lowest = min(float(min(run.test_accuracy, default=0.0)) for runs in comparison.runs.values() for run in runs)
    accuracy_axis.set_ylim(0 if lowest < 0.6 else 100 * lowest - 1, 100)  # zoom in when every run learned
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure


def _ridges(axis: Any, steps: Any, table: Any, color: str, lo: float, hi: float, ridges: int = 16) -> None:
    """Ridge plot: a smoothed histogram (over layers) of log10(value) at ``ridges`` logged steps.

    ``table`` has a row per logged step and a column per parameter; the first step is at the top,
    as in the article's TensorBoard histograms.
    """
    from lamb_edu.backend import np

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
    from lamb_edu.backend import np

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
    figure, axes = plt.subplots(len(labels), 3, figsize=(14, 4.2 * len(labels)), constrained_layout=True, squeeze=False)
    figure.suptitle("Per-layer trust ratio r, weight norm r1 and update norm r2 through MNIST training "
                    f"(seed {comparison.seeds[seed_index]}; each ridge: distribution over the {len(comparison.runs[labels[0]][0].parameter_names)} parameters)")
    for column, (key, name) in enumerate(TRUST_STATISTICS):
        tables = [getattr(comparison.runs[label][seed_index], key) for label in labels]
        lo, hi = _log_range(tables)
        for row, label in enumerate(labels):
            run = comparison.runs[label][seed_index]
            axis = axes[row, column]
            _ridges(axis, run.log_steps, tables[row], _setting_color(comparison, label), lo, hi)
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
    figure.suptitle(f"Trust ratio and weight norm of every layer (seed {comparison.seeds[seed_index]})")
    for column, label in enumerate(labels):
        run = comparison.runs[label][seed_index]
        for index, name in enumerate(run.parameter_names):
            style = dict(color=f"C{index}", linestyle="-" if name.endswith("weight") else "--", label=name)
            axes[0, column].semilogy(run.log_steps, run.trust_ratio[:, index], **style)
            axes[1, column].semilogy(run.log_steps, run.weight_norm[:, index], **style)
        axes[0, column].axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        axes[0, column].set_title(f"{label}: trust ratio r" + ("" if run.setting.use_trust_ratio else " (computed, not used)"))
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
    figure, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 5.5), constrained_layout=True, squeeze=False)
    figure.suptitle(f"Weight norms ‖w‖ of the layers through training (seed {comparison.seeds[seed_index]}; "
                    "each ridge: distribution over the parameters at one step)")
    tables = [comparison.runs[label][seed_index].weight_norm for label in labels]
    lo, hi = _log_range(tables)
    for axis, label, table in zip(axes[0], labels, tables):
        run = comparison.runs[label][seed_index]
        _ridges(axis, run.log_steps, table, _setting_color(comparison, label), lo, hi)
        verdict = run.divergence.status + (f" at step {run.divergence.step}" if run.divergence.status == "diverged" else "")
        axis.set_title(f"{label}\n({verdict})", fontsize=10)
        axis.set_xlabel("log10 ‖w‖")
    return figure


# The titles of the MNIST comparisons, shared by experiment_figures and the notebooks.
MNIST_TITLES = {
    "adam_vs_lamb": "Adam against LAMB on MNIST, lr 0.01, betas (0.9, 0.99)",
    "lr_and_weight_decay": "Learning rate and weight decay: LAMB at lr 0.01, 0.1, 0.1 with weight decay 0.01; Adam at 0.1",
    "article_code": "The article code's sample run: lr 0.02, batch 512, weight decay 0.01, no bias correction",
}


def experiment_figures(name: str, result: Any) -> dict[str, Any]:
    """The figures of experiment ``name`` (a key of ``experiments.EXPERIMENTS``), by file name."""
    if name == "debias":
        return {
            "debias_moving_average.png": plot_moving_averages(result, bias_correction=False),
            "debias_moving_average_corrected.png": plot_moving_averages(result, bias_correction=True),
            "debias_correction_factor.png": plot_bias_correction_factor(result),
        }
    if name == "sgd_to_lamb":
        return {
            "sgd_to_lamb_paths.png": plot_two_layer_trajectories(result),
            "sgd_to_lamb_convergence.png": plot_two_layer_convergence(result),
            "sgd_to_lamb_trust_ratio.png": plot_two_layer_trust_ratio(result),
        }
    if name == "trust_ratio":
        return {
            "trust_ratio_ridges.png": plot_trust_ridges(result),
            "trust_ratio_per_layer.png": plot_trust_per_layer(result),
        }
    if name == "adam_vs_lamb":
        return {"adam_vs_lamb.png": plot_mnist_comparison(result, MNIST_TITLES["adam_vs_lamb"])}
    if name == "lr_and_weight_decay":
        return {
            "lr_and_weight_decay.png": plot_mnist_comparison(result, MNIST_TITLES["lr_and_weight_decay"]),
            "lr_and_weight_decay_weight_norms.png": plot_weight_norm_ridges(result),
            "lr_and_weight_decay_per_layer.png": plot_trust_per_layer(result),
        }
    if name == "article_code":
        return {"article_code.png": plot_mnist_comparison(result, MNIST_TITLES["article_code"])}
    raise ValueError(f"no figures for experiment {name!r}")
