"""Every experiment by name, and how to run one: ``EXPERIMENTS``, ``run_experiment`` and ``quick_mode``.

To add a study, write its module (a function that takes ``quick`` and returns a result with a
``summary()``; MNIST studies also take ``data_dir`` and ``progress``) and add one line to
``EXPERIMENTS``; ``lamb-edu reproduce`` then runs it, and ``lamb_edu.plots.experiment_figures``
needs one line for its figures.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

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

__all__ = ["QUICK_ENVIRONMENT_VARIABLE", "quick_mode", "EXPERIMENTS", "run_experiment", "COMMITTED_RESULTS",
           "committed_results"]

QUICK_ENVIRONMENT_VARIABLE = "LAMB_EDU_QUICK"
# results.json of the committed full reproduce, beside the package in a checkout (absent from an installed wheel)
COMMITTED_RESULTS = Path(__file__).resolve().parents[2] / "figures" / "results.json"


def committed_results(path: Path | None = None) -> dict[str, Any]:
    """The numbers of the committed full reproduce (``figures/results.json``) by experiment, or {} when absent.

    Notebooks quote the full runs they cannot afford to repeat (the CNN) from here, not from memory.
    """
    path = COMMITTED_RESULTS if path is None else Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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


def run_experiment(name: str, quick: bool = False, data_dir: Any = None, progress: bool = False,
                   network: str | None = None, seeds: Sequence[int] | None = None,
                   workers: int | None = None) -> Any:
    """Run the experiment called ``name`` (a key of ``EXPERIMENTS``) with its default settings.

    ``data_dir`` and ``progress`` go to the experiments that take them (those that train on MNIST),
    and so do ``network``, ``seeds`` and ``workers`` (processes that train its runs) when given (an
    experiment of one seed takes the first seed).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    accepted = inspect.signature(experiment).parameters
    options = {key: value for key, value in (("data_dir", data_dir), ("progress", progress)) if key in accepted}
    if workers is not None and "workers" in accepted:
        options["workers"] = workers
    if network is not None and "network" in accepted:
        options["network"] = network
    if seeds is not None and "seeds" in accepted:
        options["seeds"] = tuple(seeds)
    elif seeds is not None and "seed" in accepted:
        options["seed"] = seeds[0]
    return experiment(quick=quick, **options)
