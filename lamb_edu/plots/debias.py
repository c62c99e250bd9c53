"""Experiment 1 (debias): the moving averages per β, and the bias-correction factor 1/(1 − βᵗ)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

__all__ = [
    "plot_moving_averages", "plot_bias_correction_factor", "plot_uncorrected_step_ratio", "plot_debias_view",
    "debias_figures",
]


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
        axis.semilogx(result.steps, result.factor[beta], color="tab:blue", label="1 / (1 − βᵗ)")
        axis.axhline(1.0, color="0.4", linestyle=":", label="1 (no correction)")
        within = result.steps_to_within(beta)
        axis.axvline(within, color="tab:green", linestyle="--", label=f"below 1.01 from t = {within}")
        axis.set_title(f"β = {beta}: factor {result.factor[beta][0]:.3g} at t = 1")
        axis.set_xlabel("step t (log scale)")
        axis.set_ylabel("correction factor (×)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure


def plot_uncorrected_step_ratio(steps: Any, ratios: dict[tuple[float, float], Any]) -> Any:
    """How much larger Adam's step is without bias correction: (1 − β1ᵗ)/√(1 − β2ᵗ) against t (log axis).

    ``ratios`` maps (β1, β2) to the ratio at each of ``steps`` (``experiments.uncorrected_step_ratio``);
    the peak of each curve is marked.
    """
    figure, axis = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    for (beta1, beta2), ratio in ratios.items():
        peak = int(ratio.argmax())
        line, = axis.semilogx(steps, ratio, label=f"β = ({beta1}, {beta2})")
        axis.plot(steps[peak], ratio[peak], "o", color=line.get_color())
        axis.annotate(f"{ratio[peak]:.2f}× at t = {int(steps[peak])}", (steps[peak], ratio[peak]),
                      textcoords="offset points", xytext=(6, 4), fontsize=8, color=line.get_color())
    axis.axhline(1.0, color="0.4", linestyle=":", label="1: the step Adam means to take")
    axis.set_title("Adam's step without bias correction, over the corrected step: (1 − β1ᵗ) / √(1 − β2ᵗ)")
    axis.set_xlabel("step t (log scale)")
    axis.set_ylabel("ratio of step sizes (×)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return figure


def plot_debias_view(result: Any, beta: float, steps: int) -> Any:
    """The debias slider's figure: the first ``steps`` points averaged with ``beta``, and 1/(1 − βᵗ) up to there.

    ``result`` is an ``experiments.DebiasResult`` computed for ``beta`` (``classroom.debias_view`` makes it).
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    figure.suptitle(f"β = {beta}, the first {steps} steps")
    axes[0].scatter(result.x[:steps], result.data[:steps], s=8, color="0.6", label="data")
    axes[0].plot(result.x[:steps], result.average[beta][:steps], color="tab:red", label="moving average m_t")
    axes[0].plot(result.x[:steps], result.debiased[beta][:steps], color="tab:green", label="debiased m_t / (1 − βᵗ)")
    axes[0].set_xlabel("x (sample t = 1 … from left to right)")
    axes[0].set_ylabel("value (no unit)")
    axes[0].set_ylim(-1.2, 1.5)
    axes[0].legend(fontsize=8)
    axes[1].semilogx(result.steps[:steps], result.factor[beta][:steps], color="tab:blue")
    factor = result.factor[beta]
    axes[1].set_title(f"1 / (1 − βᵗ): {factor[0]:.3g} at t = 1, {factor[steps - 1]:.3g} at t = {steps}")
    axes[1].set_xlabel("step t (log scale)")
    axes[1].set_ylabel("correction factor (×)")
    for axis in axes:
        axis.grid(alpha=0.3, which="both")
    return figure



def debias_figures(result: Any) -> dict[str, Any]:
    """The figures of experiment 1, by file name."""
    return {
        "debias_moving_average.png": plot_moving_averages(result, bias_correction=False),
        "debias_moving_average_corrected.png": plot_moving_averages(result, bias_correction=True),
        "debias_correction_factor.png": plot_bias_correction_factor(result),
    }
