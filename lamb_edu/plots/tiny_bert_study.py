"""The tiny-BERT study's figures: trust ratios by kind of tensor, accuracy against batch size, validation curves.

Each function reads an ``experiments.TinyBertResult`` (or its ``summary()``: the same keys), so the
figures can be drawn again from ``results.json`` without training anything.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from lamb_edu.plots.large_batch import batch_color
from lamb_edu.plots.tiny_bert import KIND_COLORS

__all__ = ["plot_study_trust_by_kind", "plot_tiny_bert_accuracy", "plot_tiny_bert_curves", "tiny_bert_figures"]

LABELS = {"adamw": "AdamW", "lars": "LARS", "lamb": "LAMB", "sgd": "SGD + Nesterov"}
STATISTICS = (("trust_ratio", "trust ratio (median of the kind's tensors)"), ("weight_norm", "‖w‖ (median)"),
              ("ratio_denominator", "ratio denominator (median; LAMB ‖u‖, LARS ‖g‖ + λ‖w‖)"))


def _summary(result: Any) -> dict[str, Any]:
    return result if isinstance(result, dict) else result.summary()


def plot_study_trust_by_kind(result: Any) -> Any:
    """For LAMB and LARS (rows): trust ratio, ‖w‖ and ‖u‖ over training, one line per kind of tensor (log scale)."""
    trust = _summary(result)["trust"]
    figure, axes = plt.subplots(len(trust), 3, figsize=(15, 4.2 * len(trust)), squeeze=False, constrained_layout=True)
    for row, (name, record) in enumerate(trust.items()):
        for column, (key, label) in enumerate(STATISTICS):
            axis = axes[row][column]
            for kind, entry in record["kinds"].items():
                if key in entry:
                    axis.plot(record["steps"], entry[key], color=KIND_COLORS.get(kind, "black"), label=kind, lw=1.4)
            axis.set_yscale("log")
            axis.set_title(f"{LABELS.get(name, name)}: {label}", fontsize=10)
            axis.set_xlabel("step")
            axis.grid(alpha=0.3, which="both")
        axes[row][0].legend(fontsize=8, ncol=2)
    figure.suptitle("Per-tensor trust ratios by kind, chosen run at the smallest batch (seed 0)")
    return figure


def plot_tiny_bert_accuracy(result: Any) -> Any:
    """Validation masked accuracy against batch size: each optimizer's tuned lr, mean of the seeds and each seed."""
    summary = _summary(result)
    figure, axis = plt.subplots(figsize=(8, 5), constrained_layout=True)
    table = summary["table"]
    batches = sorted({row["batch_size"] for row in table})
    for name in summary["settings"]["optimizers"]:
        rows = sorted((row for row in table if row["optimizer"] == name), key=lambda row: row["batch_size"])
        color = batch_color(name)
        axis.plot([row["batch_size"] for row in rows], [100 * row["mean_accuracy"] for row in rows], "-o", color=color,
                  label=LABELS.get(name, name))
        for row in rows:
            axis.scatter([row["batch_size"]] * len(row["accuracy"]), [100 * a for a in row["accuracy"]], color=color,
                         s=12, alpha=0.5)
    axis.axhline(100 * summary["unigram_accuracy"], color="gray", ls=":", label="always a space (unigram)")
    axis.set_xscale("log", base=2)
    axis.set_xticks(batches, [str(b) for b in batches])
    axis.set_xlabel("batch size (windows of %d characters per step)" % summary["settings"]["context"])
    axis.set_ylabel("validation masked-character accuracy (%)")
    axis.set_title(f"Tiny BERT, {summary['settings']['token_budget']:,} training tokens per run")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=9)
    return figure


def plot_tiny_bert_curves(result: Any) -> Any:
    """Validation accuracy over training tokens at the smallest batch: each optimizer's chosen seed-0 run."""
    summary = _summary(result)
    smallest = min(summary["settings"]["batch_sizes"])
    figure, axis = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for tuning in summary["tunings"]:
        if tuning["batch_size"] != smallest:
            continue
        lr = tuning["best"]["settings"]["lr"]
        run = next(run for run in summary["runs"] if run["optimizer"] == tuning["optimizer"]
                   and run["batch_size"] == smallest and run["lr"] == lr and run["seed"] == 0)
        tokens = [step * run["tokens_per_step"] for step in run["curve_steps"]]
        axis.plot(tokens, [100 * a for a in run["curve_accuracy"]], "-o", ms=3, color=batch_color(run["optimizer"]),
                  label=f"{LABELS.get(run['optimizer'], run['optimizer'])} lr {lr:.3g}")
    axis.axhline(100 * summary["unigram_accuracy"], color="gray", ls=":", label="always a space")
    axis.set_xlabel("training tokens")
    axis.set_ylabel("validation masked accuracy (%)")
    axis.set_title(f"The plateau and the crossing, batch {smallest}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    return figure


def tiny_bert_figures(result: Any) -> dict[str, Any]:
    """The study's figures by file name."""
    return {"tiny_bert_trust_by_kind.png": plot_study_trust_by_kind(result),
            "tiny_bert_accuracy_vs_batch.png": plot_tiny_bert_accuracy(result),
            "tiny_bert_curves.png": plot_tiny_bert_curves(result)}
