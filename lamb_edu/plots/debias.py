"""Experiment 1 (debias): the moving averages per β, and the bias-correction factor 1/(1 − βᵗ)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

__all__ = ["plot_moving_averages", "plot_bias_correction_factor", "debias_figures"]


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



def debias_figures(result: Any) -> dict[str, Any]:
    """The figures of experiment 1, by file name."""
    return {
        "debias_moving_average.png": plot_moving_averages(result, bias_correction=False),
        "debias_moving_average_corrected.png": plot_moving_averages(result, bias_correction=True),
        "debias_correction_factor.png": plot_bias_correction_factor(result),
    }
