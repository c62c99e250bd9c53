"""Training curves of ``lamb-edu train`` and ``lamb-edu plot``: loss against the step, accuracy against the epoch.

A "run" here is a plain dict: label, steps and loss (training loss against the step), epochs and
test_accuracy (a fraction, per epoch), diverged (False or a step). ``history_run`` makes one from a
``train.History`` in memory, ``load_run`` from the files ``lamb-edu train`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

__all__ = ["history_run", "load_run", "LABEL_KEYS", "settings_labels", "plot_training_curves"]


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

