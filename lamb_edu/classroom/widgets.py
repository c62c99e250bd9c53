"""What the notebooks' sliders show: one function per slider panel, computing and drawing its figure.

Each ``*_view`` takes the slider values and returns a Matplotlib figure, so the tests call them
directly and a notebook without a widget frontend (CI, a static render) shows the figure at the
default values. ``sliders`` adds the ipywidgets controls where they can be shown; ipywidgets is
imported only there, so ``import lamb_edu`` never needs it.

- ``debias_view(beta, steps)``: notebook 01, the moving average and 1/(1 − βᵗ) for one β.
- ``trajectory_view(optimizer, lr)``: notebook 02, one optimizer's path on the two-layer loss.
- ``trust_ratio_view(weight_decay, clamp_value)``: notebook 03, LAMB's r, ‖w‖ and step per layer on
  two vector layers, where ‖w‖ of the large layer passes the clamp.
"""

from __future__ import annotations

from typing import Any, Callable

import matplotlib.pyplot as plt

from lamb_edu import experiments, plots

__all__ = ["debias_view", "trajectory_view", "trust_ratio_view", "TRAJECTORY_CHOICES", "sliders"]

# the optimizers of notebook 02 a student can pick, with their default settings
TRAJECTORY_CHOICES = {name: setting for name, setting in experiments.TWO_LAYER_OPTIMIZERS.items()}


def debias_view(beta: float = 0.9, steps: int = 50) -> Any:
    """The noisy series of experiment 1 averaged with ``beta``, and the factor 1/(1 − βᵗ), over the first ``steps``."""
    if not 1 <= int(steps) <= 200:
        raise ValueError(f"steps must be between 1 and 200, got {steps!r}")
    result = experiments.debias(betas=(beta,), factor_steps=200)
    return plots.plot_debias_view(result, result.betas[0], int(steps))


def trajectory_view(optimizer: str = "LAMB", lr: float | None = None, steps: int = 200) -> Any:
    """``optimizer``'s path on the two-layer loss at learning rate ``lr`` (its default of notebook 02 when None)."""
    if optimizer not in TRAJECTORY_CHOICES:
        raise ValueError(f"optimizer must be one of {sorted(TRAJECTORY_CHOICES)}, got {optimizer!r}")
    class_name, settings = TRAJECTORY_CHOICES[optimizer]
    settings = {**settings, "lr": settings["lr"] if lr is None else float(lr)}
    result = experiments.from_sgd_to_lamb(steps=steps, optimizers={optimizer: (class_name, settings)})
    return plots.plot_two_layer_trajectories(result, names=[optimizer])


def trust_ratio_view(weight_decay: float = 0.0, clamp_value: float | None = 10.0, lr: float = 0.05) -> Any:
    """LAMB on two vector layers with ``weight_decay`` and ``clamp_value`` (None or 0: no clamp): r, ‖w‖, ‖Δw‖ per layer."""
    clamp = None if clamp_value in (None, 0) else float(clamp_value)
    run = experiments.lamb_on_vector_layers(lr=lr, weight_decay=float(weight_decay), clamp_value=clamp)
    return plots.plot_vector_layers(run)


def sliders(view: Callable[..., Any], **controls: Any) -> Any:
    """Show ipywidgets controls that redraw ``view`` below them; None when ipywidgets is not installed.

    ``controls`` are what ``ipywidgets.interact`` takes: a (min, max, step) tuple for a slider, a list
    for a drop-down. The notebook draws the default figure itself first, so a static render has it.
    """
    try:
        import ipywidgets  # noqa: PLC0415 - only the notebooks' slider cells need it
    except ImportError:
        return None

    def redraw(**values: Any) -> None:
        figure = view(**values)
        plt.show()
        plt.close(figure)

    return ipywidgets.interactive(redraw, **{name: _control(ipywidgets, value) for name, value in controls.items()})


def _control(ipywidgets: Any, value: Any) -> Any:
    """An ipywidgets control for an interact abbreviation, with a continuous_update off (each redraw trains)."""
    if isinstance(value, tuple) and len(value) == 4:  # (min, max, step, default)
        low, high, step, default = value
        kind = ipywidgets.IntSlider if all(isinstance(x, int) for x in value) else ipywidgets.FloatSlider
        return kind(min=low, max=high, step=step, value=default, continuous_update=False)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list):  # (options, default)
        return ipywidgets.Dropdown(options=value[0], value=value[1])
    return value
