"""The figures of each experiment, by the experiment's name in ``experiments.EXPERIMENTS``.

To give a new study its figures, write a function from its result to ``{file name: Figure}`` in
the module of its figure family and add one line to ``FIGURES``.
"""

from __future__ import annotations

from typing import Any, Callable

from lamb_edu.plots.debias import debias_figures
from lamb_edu.plots.large_batch import large_batch_figures
from lamb_edu.plots.mnist import adam_vs_lamb_figures, article_code_figures, lr_and_weight_decay_figures
from lamb_edu.plots.tiny_bert_study import tiny_bert_figures
from lamb_edu.plots.trajectories import sgd_to_lamb_figures
from lamb_edu.plots.trust_ratio import trust_ratio_figures

__all__ = ["FIGURES", "experiment_figures"]

FIGURES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "debias": debias_figures,
    "sgd_to_lamb": sgd_to_lamb_figures,
    "trust_ratio": trust_ratio_figures,
    "adam_vs_lamb": adam_vs_lamb_figures,
    "lr_and_weight_decay": lr_and_weight_decay_figures,
    "article_code": article_code_figures,
    "large_batch": large_batch_figures,
    "tiny_bert": tiny_bert_figures,
}


def experiment_figures(name: str, result: Any) -> dict[str, Any]:
    """The figures of experiment ``name`` (a key of ``experiments.EXPERIMENTS``), by file name."""
    if name not in FIGURES:
        raise ValueError(f"no figures for experiment {name!r}")
    return FIGURES[name](result)
