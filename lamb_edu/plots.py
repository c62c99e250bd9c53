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
