"""What the notebooks' sliders show: one function per slider panel, computing and drawing its figure.

Each ``*_view`` takes the slider values and returns a Matplotlib figure, so the tests call them
directly and a notebook without a widget frontend (CI, a static render) shows the figure at the
default values. ``sliders`` adds the ipywidgets controls where they can be shown; ipywidgets is
imported only there, so ``import lamb_edu`` never needs it.

- ``debias_view(beta, steps)``: notebook 01, the moving average and 1/(1 − βᵗ) for one β.
- ``uncorrected_ratio_view(beta1, beta2)``: notebook 01, Adam's uncorrected step over the corrected one.
- ``trajectory_view(optimizer, lr)``: notebook 02, one optimizer's path on the two-layer loss.
- ``trust_ratio_view(weight_decay, clamp_value)``: notebook 03, LAMB's r, ‖w‖ and step per layer on
  two vector layers, where ‖w‖ of the large layer passes the clamp.
- ``cost_model_view(bandwidth_gbps, latency_us, batch, overlap)``: notebook 07, BERT-Large's data
  parallelism on paper (the ring all-reduce cost model): efficiency and hours per epoch against workers.
"""

from __future__ import annotations

from typing import Any, Callable

import matplotlib.pyplot as plt

from lamb_edu import distributed, experiments, plots
from lamb_edu.backend import np

__all__ = ["debias_view", "uncorrected_ratio_view", "trajectory_view", "trust_ratio_view", "cost_model_view",
           "TRAJECTORY_CHOICES", "sliders"]

# the optimizers of notebook 02 a student can pick, with their default settings
TRAJECTORY_CHOICES = {name: setting for name, setting in experiments.TWO_LAYER_OPTIMIZERS.items()}


def debias_view(beta: float = 0.9, steps: int = 50) -> Any:
    """The noisy series of experiment 1 averaged with ``beta``, and the factor 1/(1 − βᵗ), over the first ``steps``."""
    if not 1 <= int(steps) <= 200:
        raise ValueError(f"steps must be between 1 and 200, got {steps!r}")
    result = experiments.debias(betas=(beta,), factor_steps=200)
    return plots.plot_debias_view(result, result.betas[0], int(steps))


def uncorrected_ratio_view(beta1: float = 0.9, beta2: float = 0.999, steps: int = 20000) -> Any:
    """(1 − β1ᵗ)/√(1 − β2ᵗ) for t = 1 … ``steps``, its peak marked: how much larger Adam's uncorrected step is."""
    ts = np.arange(1, int(steps) + 1)
    return plots.plot_uncorrected_step_ratio(ts, {(float(beta1), float(beta2)):
                                                  experiments.uncorrected_step_ratio(beta1, beta2, ts)})


def trajectory_view(optimizer: str = "LAMB", lr: float | None = None, steps: int = 200) -> Any:
    """``optimizer``'s path on the two-layer loss at learning rate ``lr`` (its default of notebook 02 when None)."""
    if optimizer not in TRAJECTORY_CHOICES:
        raise ValueError(f"optimizer must be one of {sorted(TRAJECTORY_CHOICES)}, got {optimizer!r}")
    class_name, settings = TRAJECTORY_CHOICES[optimizer]
    settings = {**settings, "lr": settings["lr"] if lr is None else float(lr)}
    result = experiments.from_sgd_to_lamb(steps=steps, optimizers={optimizer: (class_name, settings)})
    return plots.plot_two_layer_trajectories(result, names=[optimizer])


def trust_ratio_view(weight_decay: float = 0.0, clamp_value: float | None = 10.0, lr: float = 0.05) -> Any:
    """LAMB on two vector layers with ``weight_decay`` and ``clamp_value`` (None or 0: no clamp): r, ‖w‖, ‖Δw‖."""
    clamp = None if clamp_value in (None, 0) else float(clamp_value)
    run = experiments.lamb_on_vector_layers(lr=lr, weight_decay=float(weight_decay), clamp_value=clamp)
    return plots.plot_vector_layers(run)


def cost_model_view(bandwidth_gbps: float = 100.0, latency_us: float = 5.0, batch: int = 65536,
                    overlap: float = 4 / 6, parameters: float = 340e6, tokens: int = 128,
                    flops: float = 50e12) -> Any:
    """Data parallelism of a ``parameters`` model on paper, the ring all-reduce against each worker's compute.

    Each sequence of ``tokens`` costs 6·parameters·tokens FLOPs at ``flops`` per second; float32 gradients
    go through one ring all-reduce on links of ``bandwidth_gbps`` Gb/s and ``latency_us`` µs, of which
    ``overlap`` of the compute (backward, with buckets: 4/6) can hide. Lines for batches 512, 8K and
    ``batch``, 8 to 1024 workers; an epoch is 10 million sequences. The defaults are notebook 07's BERT-Large.
    """
    seconds_per_example = 6 * parameters * tokens / flops
    workers = [2**k for k in range(3, 11)]
    batches = sorted({512, 8192, int(batch)})
    predictions = {(p, b): distributed.predict_data_parallel_step(
        parameters, p, b, seconds_per_example=seconds_per_example, bandwidth=bandwidth_gbps * 1e9 / 8,
        latency=latency_us * 1e-6, overlap=overlap) for p in workers for b in batches if b >= p}
    return plots.plot_predicted_scaling(workers, batches, predictions, 10e6,
                                        title=f"{parameters / 1e6:.0f}M parameters on paper: {bandwidth_gbps:g} Gb/s "
                                              f"ring, {latency_us:g} µs, overlap {overlap:.2f}, "
                                              f"{flops / 1e12:g} TFLOP/s per GPU")


def sliders(view: Callable[..., Any], **controls: Any) -> Any:
    """Show ipywidgets controls that redraw ``view`` below them; None when ipywidgets is not installed.

    ``controls`` are a (min, max, step, default) tuple for a slider or an (options, default) pair for a
    drop-down. Nothing is drawn until a control moves: the notebook draws the default figure itself
    first, so a static render (or a run without a widget frontend) has it, and building the controls
    sends no output through a widget (which a headless notebook run does not need).
    """
    try:
        import ipywidgets  # noqa: PLC0415 - only the notebooks' slider cells need it
    except ImportError:
        return None
    widgets = {name: _control(ipywidgets, name, value) for name, value in controls.items()}
    output = ipywidgets.Output()

    def redraw(change: Any = None) -> None:
        with output:
            output.clear_output(wait=True)
            figure = view(**{name: widget.value for name, widget in widgets.items()})
            plt.show()
            plt.close(figure)

    for widget in widgets.values():
        widget.observe(redraw, names="value")
    return ipywidgets.VBox([*widgets.values(), output])


def _control(ipywidgets: Any, name: str, value: Any) -> Any:
    """The control called ``name`` for a (min, max, step, default) or (options, default) abbreviation.

    Sliders redraw only when released (``continuous_update`` off): each redraw may train.
    """
    if isinstance(value, tuple) and len(value) == 4:  # (min, max, step, default)
        low, high, step, default = value
        kind = ipywidgets.IntSlider if all(isinstance(x, int) for x in value) else ipywidgets.FloatSlider
        return kind(min=low, max=high, step=step, value=default, continuous_update=False, description=name)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list):  # (options, default)
        return ipywidgets.Dropdown(options=value[0], value=value[1], description=name)
    raise ValueError(f"a control is a (min, max, step, default) tuple or an (options, default) pair, got {value!r}")
