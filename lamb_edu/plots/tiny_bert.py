"""TinyBERT's tensors by kind: trust ratio, ‖w‖ and the ratio's denominator through training.

The figure the LAMB paper's case rests on.

The functions take plain data, one entry per optimizer::

    runs = {"LAMB": {"steps": (logs,), "names": [parameter names], "trust_ratio": (logs, params),
                     "weight_norm": (logs, params), "ratio_denominator": (logs, params)}, "LARS": {...}}

(``History.log_steps``, ``.weight_norm``, ``.ratio_denominator`` and ``.trust_ratio`` of a run, with the
model's parameter names in the order of their columns). Tensors are grouped by
``nn.parameter_kind``: embeddings, query, key, value, attention output, FFN, LayerNorm γ and β,
biases, head.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt

from lamb_edu.backend import np
from lamb_edu.nn import group_by_kind

__all__ = ["KIND_COLORS", "summarise_by_kind", "plot_trust_by_kind"]

# one colour per kind of tensor (``nn.PARAMETER_KINDS``), in every tiny-BERT figure
KIND_COLORS = {"embeddings": "tab:purple", "query": "tab:blue", "key": "tab:cyan", "value": "tab:green",
               "attention output": "tab:olive", "FFN": "tab:orange", "LayerNorm γ": "tab:red",
               "LayerNorm β": "tab:pink", "head": "tab:brown", "biases": "tab:gray"}
STATISTICS = (("trust_ratio", "trust ratio"), ("weight_norm", "‖w‖"),
              ("ratio_denominator", "ratio denominator (LAMB ‖u‖, LARS ‖g‖ + λ‖w‖)"))


def summarise_by_kind(names: Sequence[str], table: Any) -> dict[str, dict[str, Any]]:
    """Per kind, the median, minimum and maximum over its tensors at each logged step.

    ``table`` is (logs, params) with a column per name; non-finite values are left out. Returns
    {kind: {"median": (logs,), "min": (logs,), "max": (logs,), "names": [...]}}, kinds in
    ``PARAMETER_KINDS`` order; nan at a step where all of a kind's values are non-finite.
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(f"summarise_by_kind: a table of shape (logs, {len(names)}) is needed, got {table.shape}")
    column = {name: index for index, name in enumerate(names)}
    summary = {}
    for kind, members in group_by_kind(names).items():
        values = table[:, [column[name] for name in members]]
        values = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():  # a step where every tensor of a kind is non-finite gives nan, said here
            warnings.simplefilter("ignore", RuntimeWarning)
            summary[kind] = {"median": np.nanmedian(values, axis=1), "min": np.nanmin(values, axis=1),
                             "max": np.nanmax(values, axis=1), "names": members}
    return summary


def plot_trust_by_kind(runs: Mapping[str, Mapping[str, Any]], title: str = "TinyBERT") -> Any:
    """Rows: trust ratio, ‖w‖, ‖u‖; columns: optimizers. Per kind, the median over its tensors (line) and
    the range from the smallest to the largest (band), on a logarithmic axis shared along each row."""
    labels = list(runs)
    figure, axes = plt.subplots(len(STATISTICS), len(labels), figsize=(5.5 * len(labels) + 2, 9), sharex="col",
                                sharey="row", squeeze=False, constrained_layout=True)
    figure.suptitle(f"{title}: per-tensor statistics grouped by kind (line: median over the kind's tensors; "
                    "band: smallest to largest)")
    for column, label in enumerate(labels):
        run = runs[label]
        steps = np.asarray(run["steps"])
        for row, (key, name) in enumerate(STATISTICS):
            axis = axes[row, column]
            for kind, summary in summarise_by_kind(run["names"], run[key]).items():
                color = KIND_COLORS[kind]
                median, low, high = (np.where(summary[part] > 0, summary[part], np.nan)  # a log axis
                                     for part in ("median", "min", "max"))
                axis.plot(steps, median, color=color, linewidth=1.5, label=f"{kind} ({len(summary['names'])})")
                axis.fill_between(steps, low, high, color=color, alpha=0.15, linewidth=0)
            axis.set_yscale("log")
            axis.set_title(f"{label}: {name}", fontsize=10)
            if column == 0:
                axis.set_ylabel(name)
            if row == len(STATISTICS) - 1:
                axis.set_xlabel("training step")
    handles, names = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside right upper", fontsize=8, title="kind (tensors)", title_fontsize=8)
    return figure
