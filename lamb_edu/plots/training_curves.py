"""Training curves of ``lamb-edu train`` and ``lamb-edu plot``: loss against the step, accuracy against the epoch.

A "run" here is a plain dict: label, steps and loss (training loss against the step), epochs and
test_accuracy (a fraction, per epoch), nonfinite_step (None or a step; ``diverged`` in older dicts).
``history_run`` makes one from a ``train.History`` in memory; ``load_run`` is ``train.run_folder.read_run``,
which reads and checks the files ``lamb-edu train`` wrote (the run folder's files are parsed there only).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from lamb_edu.train.run_folder import read_run as load_run

__all__ = ["history_run", "load_run", "LABEL_KEYS", "settings_labels", "plot_training_curves"]


def history_run(history: Any, label: str) -> dict[str, Any]:
    """A run dict from a ``train.History``: the loss of every step and the test accuracy of every epoch."""
    return {
        "label": label,
        "steps": list(range(1, len(history.step_loss) + 1)),
        "loss": list(history.step_loss),
        "epochs": [record["epoch"] for record in history.epochs],
        "test_accuracy": [record["test_accuracy"] for record in history.epochs],
        "nonfinite_step": history.nonfinite_step,
    }


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
        stopped = run.get("nonfinite_step", run.get("diverged"))
        stopped = None if stopped is False else stopped
        label = run["label"] + (f" (diverged at step {stopped})" if stopped is not None else "")
        loss_axis.plot(run["steps"], run["loss"], color=color, linewidth=1, label=label)
        if stopped is not None and run["steps"]:
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

