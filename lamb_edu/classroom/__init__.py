"""The classroom: what the notebooks compute for students to check by hand, move with a slider, or break.

- ``step_by_hand``: one LAMB step of Algorithm 2 on calculator-sized numbers, line by line, and the
  same step from ``optim.LAMB`` to compare (notebook 03).
- ``widgets``: the sliders' figures (``debias_view``, ``uncorrected_ratio_view``, ``trajectory_view``,
  ``trust_ratio_view``) and
  ``sliders``, which imports ipywidgets only when called.
- ``scale_check``: does an update rule keep its step when the loss, or a layer's weights, are scaled
  (notebook 08, with ``variants``)?
- ``variants``: misquoted LAMB and LARS rules as runnable optimizers (notebook 08).
- ``misquotes``: notebook 08's MNIST runs, the paper's LAMB beside each misquote (``misquotes_on_mnist``).
"""

from lamb_edu.classroom import variants
from lamb_edu.classroom.misquotes import MISQUOTES, RuleSetting, misquotes_on_mnist
from lamb_edu.classroom.scale_check import ScaleCheck, scale_check
from lamb_edu.classroom.step_by_hand import (
    TOY_GRADIENTS,
    TOY_SETTINGS,
    TOY_WEIGHTS,
    LayerStep,
    algorithm_lines,
    lamb_step_by_hand,
    lamb_step_with_optimizer,
)
from lamb_edu.classroom.widgets import (
    TRAJECTORY_CHOICES,
    cost_model_view,
    debias_view,
    sliders,
    trajectory_view,
    trust_ratio_view,
    uncorrected_ratio_view,
)

__all__ = [
    "TOY_WEIGHTS", "TOY_GRADIENTS", "TOY_SETTINGS", "LayerStep", "lamb_step_by_hand", "algorithm_lines",
    "lamb_step_with_optimizer", "ScaleCheck", "scale_check", "debias_view", "trajectory_view", "trust_ratio_view",
    "TRAJECTORY_CHOICES", "sliders", "variants", "RuleSetting", "MISQUOTES", "misquotes_on_mnist",
    "uncorrected_ratio_view", "cost_model_view",
]
