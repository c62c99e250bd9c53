"""Figures: functions that take recorded results and draw them with Matplotlib.

Nothing here trains or runs anything; each function reads data that training or an experiment
returned and gives back a ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``).
One module per figure family:

- ``debias``: experiment 1, moving averages and the bias-correction factor.
- ``trajectories``: experiment 2, paths on the two-layer loss.
- ``trust_ratio``: experiments 3 and 5, per-layer r, ‖w‖ and the ratio's denominator through MNIST training.
- ``mnist``: experiments 4 to 6, loss and accuracy of MNIST comparisons (``MNIST_TITLES``).
- ``large_batch``: the large-batch study, accuracy and steps against batch size, lr × batch heatmaps.
- ``training_curves``: the runs of ``lamb-edu train`` and ``lamb-edu plot``.
- ``data_parallel``: measured data-parallel scaling, the all-reduce fit, predicted efficiency.
- ``tiny_bert``: TinyBERT's trust ratio, ‖w‖ and the ratio's denominator through training, its tensors grouped by kind.
- ``tiny_bert_study``: the tiny-BERT study's figures (trust by kind from its summary, accuracy by batch, curves).
- ``colors``: the colour of each MNIST setting.
- ``registry``: ``experiment_figures(name, result)``, the figures of each experiment by file name.
"""

from lamb_edu.plots.colors import SETTING_COLORS, setting_color
from lamb_edu.plots.data_parallel import plot_allreduce_fit, plot_predicted_scaling, plot_scaling
from lamb_edu.plots.debias import (
    debias_figures,
    plot_bias_correction_factor,
    plot_debias_view,
    plot_moving_averages,
    plot_uncorrected_step_ratio,
)
from lamb_edu.plots.large_batch import (
    BATCH_COLORS,
    large_batch_figures,
    plot_accuracy_vs_batch,
    plot_lr_batch_heatmaps,
    plot_steps_to_target,
)
from lamb_edu.plots.mnist import (
    MNIST_TITLES,
    adam_vs_lamb_figures,
    article_code_figures,
    lr_and_weight_decay_figures,
    plot_mnist_comparison,
)
from lamb_edu.plots.registry import FIGURES, experiment_figures
from lamb_edu.plots.tiny_bert import KIND_COLORS, plot_trust_by_kind, summarise_by_kind
from lamb_edu.plots.tiny_bert_study import (
    plot_study_trust_by_kind,
    plot_tiny_bert_accuracy,
    plot_tiny_bert_curves,
    tiny_bert_figures,
)
from lamb_edu.plots.training_curves import LABEL_KEYS, history_run, load_run, plot_training_curves, settings_labels
from lamb_edu.plots.trajectories import (
    OPTIMIZER_COLORS,
    TRAJECTORY_PANELS,
    optimizer_color,
    plot_two_layer_convergence,
    plot_two_layer_trajectories,
    plot_two_layer_trust_ratio,
    plot_vector_layers,
    plot_vector_layers_comparison,
    sgd_to_lamb_figures,
)
from lamb_edu.plots.trust_ratio import (
    TRUST_STATISTICS,
    plot_trust_per_layer,
    plot_trust_ridges,
    plot_weight_norm_ridges,
    trust_ratio_figures,
)

__all__ = [
    "KIND_COLORS",
    "plot_trust_by_kind",
    "summarise_by_kind",
    "plot_study_trust_by_kind",
    "plot_tiny_bert_accuracy",
    "plot_tiny_bert_curves",
    "tiny_bert_figures",
    "plot_moving_averages",
    "plot_bias_correction_factor",
    "plot_uncorrected_step_ratio",
    "plot_debias_view",
    "TRAJECTORY_PANELS",
    "OPTIMIZER_COLORS",
    "plot_two_layer_trajectories",
    "plot_two_layer_convergence",
    "plot_two_layer_trust_ratio",
    "plot_vector_layers",
    "plot_vector_layers_comparison",
    "optimizer_color",
    "history_run",
    "load_run",
    "settings_labels",
    "plot_training_curves",
    "SETTING_COLORS",
    "TRUST_STATISTICS",
    "plot_mnist_comparison",
    "plot_trust_ridges",
    "plot_trust_per_layer",
    "plot_weight_norm_ridges",
    "MNIST_TITLES",
    "BATCH_COLORS",
    "plot_accuracy_vs_batch",
    "plot_lr_batch_heatmaps",
    "plot_steps_to_target",
    "large_batch_figures",
    "FIGURES",
    "experiment_figures",
    "plot_scaling",
    "plot_allreduce_fit",
    "plot_predicted_scaling",
    "setting_color",
    "debias_figures",
    "adam_vs_lamb_figures",
    "article_code_figures",
    "lr_and_weight_decay_figures",
    "LABEL_KEYS",
    "sgd_to_lamb_figures",
    "trust_ratio_figures",
]
