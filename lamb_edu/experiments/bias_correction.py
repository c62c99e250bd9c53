"""Experiment 1, debias: exponential moving averages with and without bias correction.

Adam's moments start at zero, so their early averages are pulled towards zero; dividing by
(1 − βᵗ) undoes that. The experiment smooths a noisy curve with several β and records both
averages and the correction factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from lamb_edu import backend

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = [
    "exponential_moving_average", "bias_correction_factor", "uncorrected_step_ratio", "DebiasResult", "debias",
]


def exponential_moving_average(values: Sequence[float], beta: float, bias_correction: bool = False) -> Any:
    """The moving average Adam keeps of its gradients, applied to a series.

    m₀ = 0 and m_t = β·m_{t−1} + (1 − β)·x_t for t = 1, 2, ...; with ``bias_correction`` each m_t is
    divided by (1 − βᵗ), which undoes the pull towards the zero start (Kingma & Ba 2015, section 3).
    Returns float64 m_1 ... m_T.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    values = np.asarray(values, dtype=np.float64)
    average = np.empty_like(values)
    m = 0.0
    for t, x in enumerate(values, start=1):
        m = beta * m + (1.0 - beta) * x
        average[t - 1] = m / (1.0 - beta**t) if bias_correction else m
    return average


def bias_correction_factor(beta: float, steps: Any) -> Any:
    """1 / (1 − βᵗ) for each step t (t ≥ 1): what bias correction multiplies the average by."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    steps = np.asarray(steps, dtype=np.float64)
    if steps.size and steps.min() < 1:
        raise ValueError("bias correction starts at step t = 1")
    return 1.0 / (1.0 - beta**steps)


def uncorrected_step_ratio(beta1: float, beta2: float, steps: Any) -> Any:
    """(1 − β1ᵗ)/√(1 − β2ᵗ) for each step t: Adam's step without bias correction over the corrected one.

    m/√v = (m̂/√v̂)·(1 − β1ᵗ)/√(1 − β2ᵗ), so this is how many times larger every coordinate's step is
    when the correction is dropped (ε aside): 3.16 at t = 1 for β = (0.9, 0.999), then more while
    1 − β1ᵗ grows faster than √(1 − β2ᵗ), about 6.57 at t = 12, and back to 1 after thousands of steps.
    """
    steps = np.asarray(steps, dtype=np.float64)
    bias_correction_factor(beta1, steps)  # the same checks of β and t
    bias_correction_factor(beta2, steps)
    return (1.0 - beta1**steps) / np.sqrt(1.0 - beta2**steps)


@dataclass
class DebiasResult:
    """Experiment 1: a noisy series, its moving averages per β, and the correction factor per β."""

    x: Any  # where the curve is sampled
    data: Any  # 1 − (x/3)² plus Gaussian noise
    betas: tuple[float, ...]
    average: dict[float, Any]  # plain moving average per β
    debiased: dict[float, Any]  # the same, divided by (1 − βᵗ)
    steps: Any  # t = 1 ... T for the correction factor
    factor: dict[float, Any]  # 1 / (1 − βᵗ) per β
    seed: int

    def steps_to_within(self, beta: float, tolerance: float = 0.01) -> int:
        """The first step at which the correction factor is below 1 + ``tolerance``."""
        t = 1
        while 1.0 / (1.0 - beta**t) >= 1.0 + tolerance:
            t += 1
        return t

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: per β, the factor at t = 1, the first averages, the errors."""
        per_beta = {}
        for beta in self.betas:
            per_beta[str(beta)] = {
                "factor_at_step_1": float(self.factor[beta][0]),
                "steps_until_factor_below_1.01": self.steps_to_within(beta),
                "first_average": float(self.average[beta][0]),
                "first_debiased": float(self.debiased[beta][0]),
                "mean_abs_error_to_curve": float(np.mean(np.abs(self.average[beta] - self.curve()))),
                "mean_abs_error_to_curve_debiased": float(np.mean(np.abs(self.debiased[beta] - self.curve()))),
            }
        return {"seed": self.seed, "points": int(self.data.size), "first_data_point": float(self.data[0]),
                "betas": per_beta}

    def curve(self) -> Any:
        """The noiseless curve 1 − (x/3)² the averages try to follow."""
        return 1.0 - (self.x / 3.0) ** 2


def debias(
    quick: bool = False,
    seed: int = 0,
    betas: Sequence[float] = (0.5, 0.7, 0.9, 0.99),
    points: int = 200,
    noise: float = 0.1,
    factor_steps: int = 500,
) -> DebiasResult:
    """Experiment 1: smooth ``points`` samples of 1 − (x/3)² (x from −4 to 4) plus Gaussian noise.

    The series is the one of fast.ai's optimizer lesson that the article shows. For each β it returns
    the moving average with and without bias correction, and the factor 1/(1 − βᵗ) for t = 1 ...
    ``factor_steps``. The experiment is cheap, so ``quick`` changes nothing; it is accepted so every
    experiment has the same signature.
    """
    del quick
    if points < 1 or factor_steps < 1:
        raise ValueError(f"points and factor_steps must be positive, got {points} and {factor_steps}")
    rng = backend.generator(seed)
    x = np.linspace(-4.0, 4.0, points)
    data = 1.0 - (x / 3.0) ** 2 + noise * rng.standard_normal(points)
    betas = tuple(float(beta) for beta in betas)
    steps = np.arange(1, factor_steps + 1)
    return DebiasResult(
        x=x,
        data=data,
        betas=betas,
        average={beta: exponential_moving_average(data, beta) for beta in betas},
        debiased={beta: exponential_moving_average(data, beta, bias_correction=True) for beta in betas},
        steps=steps,
        factor={beta: bias_correction_factor(beta, steps) for beta in betas},
        seed=seed,
    )
