"""The per-kind trust-ratio figure of TinyBERT: the summary by kind against a direct computation, and the figure
drawn from plain per-parameter data (a real short LAMB run's recorded norms)."""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import nn, optim
from lamb_edu.plots import plot_trust_by_kind, summarise_by_kind, tiny_bert, tiny_bert_study


def test_summary_by_kind_is_median_min_max_over_the_kinds_tensors():
    names = ["embeddings.token.weight", "embeddings.position.weight", "head.transform.weight", "head.bias",
             "layers.0.ffn.output.bias"]
    table = np.array([[1.0, 3.0, 5.0, 7.0, np.nan], [2.0, 8.0, 4.0, np.inf, 1.0]])
    summary = summarise_by_kind(names, table)
    assert list(summary) == ["embeddings", "biases", "head"]
    np.testing.assert_array_equal(summary["embeddings"]["median"], [2.0, 5.0])
    np.testing.assert_array_equal(summary["embeddings"]["min"], [1.0, 2.0])
    np.testing.assert_array_equal(summary["biases"]["max"], [7.0, 1.0])  # non-finite values left out
    np.testing.assert_array_equal(summary["head"]["median"], [5.0, 4.0])
    with pytest.raises(ValueError, match="shape"):
        summarise_by_kind(names, table[:, :3])


def recorded_run(optimizer_class, **settings):
    model = nn.TinyBERT(13, 8, d_model=12, n_layers=1, n_heads=3, d_ff=16, seed=0)
    names = [name for name, _ in model.named_parameters()]
    optimizer = optimizer_class(model.parameters(), **settings)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 13, size=(4, 8))
    targets = np.where(rng.random((4, 8)) < 0.5, ids, -100)
    rows = {key: [] for key in ("trust_ratio", "weight_norm", "ratio_denominator")}
    for _ in range(4):
        optimizer.zero_grad()
        nn.masked_lm_cross_entropy(model(ids), targets).backward()
        optimizer.step()
        for key in rows:
            rows[key].append([optimizer.state[p][key] for p in model.parameters()])
    return {"steps": np.arange(1, 5), "names": names, **{key: np.array(value) for key, value in rows.items()}}


def test_the_figure_draws_lamb_and_lars_by_kind():
    runs = {"LAMB": recorded_run(optim.LAMB, lr=1e-2), "LARS": recorded_run(optim.LARS, lr=1e-2)}
    figure = plot_trust_by_kind(runs)
    axes = figure.axes
    assert len(axes) == 3 * 2  # 3 statistics x 2 optimizers, row by row
    assert axes[0].get_yscale() == "log"
    kinds = {line.get_label().split(" (")[0] for line in axes[0].get_lines()}
    assert kinds == set(nn.group_by_kind(runs["LAMB"]["names"]))
    embeddings = summarise_by_kind(runs["LAMB"]["names"], runs["LAMB"]["weight_norm"])["embeddings"]["median"]
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), embeddings)  # LAMB's ‖w‖: the first kind


def test_every_kind_has_one_colour_in_every_tiny_bert_figure():
    assert set(tiny_bert.KIND_COLORS) == set(nn.PARAMETER_KINDS)
    assert len(set(tiny_bert.KIND_COLORS.values())) == len(nn.PARAMETER_KINDS)
    assert tiny_bert_study.KIND_COLORS is tiny_bert.KIND_COLORS
