"""Every experiment by name, and how to run one: ``EXPERIMENTS``, ``run_experiment`` and ``quick_mode``.

To add a study, write its module (a function that takes ``quick`` and returns a result with a
``summary()``; MNIST studies also take ``data_dir`` and ``progress``) and add one line to
``EXPERIMENTS``; ``lamb-edu reproduce`` then runs it, and ``lamb_edu.plots.experiment_figures``
needs one line for its figures.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

from lamb_edu.experiments.article_mnist import (
    adam_vs_lamb,
    article_code_claim,
    learning_rate_and_weight_decay,
    trust_ratio_histograms,
)
from lamb_edu.experiments.bias_correction import debias
from lamb_edu.experiments.large_batch import large_batch
from lamb_edu.experiments.sgd_to_lamb import from_sgd_to_lamb
from lamb_edu.experiments.tiny_bert import tiny_bert

__all__ = ["QUICK_ENVIRONMENT_VARIABLE", "quick_mode", "EXPERIMENTS", "run_experiment"]

QUICK_ENVIRONMENT_VARIABLE = "LAMB_EDU_QUICK"


def quick_mode(default: bool = False) -> bool:
    """``default``, unless the environment variable ``LAMB_EDU_QUICK`` is set to 1/true (then True)."""
    value = os.environ.get(QUICK_ENVIRONMENT_VARIABLE, "").strip().lower()
    return True if value in ("1", "true", "yes", "on") else bool(default)


# name (as `lamb-edu reproduce NAME` takes it) -> the function that runs the experiment
EXPERIMENTS: dict[str, Callable[..., Any]] = {
    "debias": debias,
    "sgd_to_lamb": from_sgd_to_lamb,
    "trust_ratio": trust_ratio_histograms,
    "adam_vs_lamb": adam_vs_lamb,
    "lr_and_weight_decay": learning_rate_and_weight_decay,
    "article_code": article_code_claim,
    "large_batch": large_batch,
    "tiny_bert": tiny_bert,
}


def run_experiment(name: str, quick: bool = False, data_dir: Any = None, progress: bool = False) -> Any:
    """Run the experiment called ``name`` (a key of ``EXPERIMENTS``) with its default settings.

    ``data_dir`` and ``progress`` go to the experiments that take them (those that train on MNIST).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    accepted = inspect.signature(experiment).parameters
    options = {key: value for key, value in (("data_dir", data_dir), ("progress", progress)) if key in accepted}
    return experiment(quick=quick, **options)
