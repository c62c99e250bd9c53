"""MNIST comparisons (experiments 4 to 6): training loss and test accuracy of several settings × seeds.

Each function takes an ``experiments.MnistComparison``; ``MNIST_TITLES`` are the figures' titles,
shared with the notebooks.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from lamb_edu.plots.colors import setting_color
from lamb_edu.plots.trust_ratio import plot_trust_per_layer, plot_weight_norm_ridges

__all__ = [
    "MNIST_TITLES",
    "plot_mnist_comparison",
    "adam_vs_lamb_figures",
    "lr_and_weight_decay_figures",
    "article_code_figures",
]

# The titles of the MNIST comparisons, shared by experiment_figures and the notebooks.
MNIST_TITLES = {
    "adam_vs_lamb": "Adam against LAMB on MNIST, lr 0.01, betas (0.9, 0.99)",
    "lr_and_weight_decay": "Learning rate and weight decay:\n"
                           "LAMB at lr 0.01, 0.1, 0.1 with weight decay 0.01; Adam at 0.1",
    "article_code": "The code README's sample run (June 2019): lr 0.02, batch 512, weight decay 0.01",
}


def plot_mnist_comparison(comparison: Any, title: str, window: int = 20) -> Any:
    """Training loss (mean of the last ``window`` steps) and test accuracy against the step, per seed.

    One colour per setting; seed 0 is drawn solid, other seeds dashed and lighter. A run judged
    "diverged" by ``experiments.detect_divergence`` gets an ✕ at the step of the first sign.
    """
    # the loss is smoothed as divergence detection smooths it; imported here so that loading plots runs nothing
    from lamb_edu.train.divergence import CHANCE_LOSS, smoothed_loss  # noqa: PLC0415

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    seeds = ("seeds " if len(comparison.seeds) > 1 else "seed ") + ", ".join(str(seed) for seed in comparison.seeds)
    figure.suptitle(f"{title}\n{comparison.rule_title}\n"
                    f"{comparison.network_name}, {comparison.train_size} training examples, "
                    f"{seeds}" + (" (first solid, others dashed)" if len(comparison.seeds) > 1 else "")
                    + (" (quick mode)" if comparison.quick else ""))
    for setting in comparison.settings:
        color = setting_color(comparison, setting.label)
        for index, run in enumerate(comparison.runs[setting.label]):
            style = dict(color=color, linewidth=1.3 if index == 0 else 0.9, alpha=1.0 if index == 0 else 0.55,
                         linestyle="-" if index == 0 else "--")
            label = setting.label if index == 0 else None
            steps = range(1, run.step_loss.size + 1)
            loss_axis.plot(steps, smoothed_loss(run.step_loss, window), label=label, **style)
            if run.evaluation_steps is not None:  # the test subset scored every few steps, with the epoch ends as dots
                accuracy_axis.plot(run.evaluation_steps, 100 * run.evaluation_accuracy, label=label, **style)
                accuracy_axis.plot(run.epoch_steps, 100 * run.test_accuracy, "o", markersize=3, color=color,
                                   alpha=style["alpha"])
            else:
                accuracy_axis.plot(run.epoch_steps, 100 * run.test_accuracy, marker="o", markersize=3, label=label,
                                   **style)
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
    accuracy_axis.set_title(_accuracy_title(comparison))
    lowest = min(float(min(run.test_accuracy, default=0.0)) for runs in comparison.runs.values() for run in runs)
    accuracy_axis.set_ylim(0 if lowest < 0.6 else 100 * lowest - 1, 100)  # zoom in when every run learned
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure


def _accuracy_title(comparison: Any) -> str:
    first = next(iter(comparison.runs.values()))[0]
    if first.evaluation_steps is None or len(first.evaluation_steps) < 2:
        return "test accuracy after each epoch"
    every = int(first.evaluation_steps[1] - first.evaluation_steps[0])
    return (f"test accuracy: {min(2000, comparison.test_size)} images every {every} steps (lines),\n"
            f"all {comparison.test_size} at each epoch's end (dots)")


def adam_vs_lamb_figures(comparison: Any) -> dict[str, Any]:
    """The figure of experiment 4, by file name."""
    return {"adam_vs_lamb.png": plot_mnist_comparison(comparison, MNIST_TITLES["adam_vs_lamb"])}


def lr_and_weight_decay_figures(comparison: Any) -> dict[str, Any]:
    """The figures of experiment 5, by file name."""
    return {
        "lr_and_weight_decay.png": plot_mnist_comparison(comparison, MNIST_TITLES["lr_and_weight_decay"]),
        "lr_and_weight_decay_weight_norms.png": plot_weight_norm_ridges(comparison),
        "lr_and_weight_decay_per_layer.png": plot_trust_per_layer(comparison),
    }


def article_code_figures(comparison: Any) -> dict[str, Any]:
    """The figure of experiment 6, by file name."""
    return {"article_code.png": plot_mnist_comparison(comparison, MNIST_TITLES["article_code"])}
