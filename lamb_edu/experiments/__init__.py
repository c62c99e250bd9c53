"""The experiments of "An intuitive understanding of the LAMB optimizer" (Ben Mann, 2019), as data.

Each experiment is a function that runs it and returns a dataclass of NumPy arrays and numbers; it
draws nothing. ``lamb_edu.plots`` turns each result into a figure, and the ``lamb-edu reproduce``
command, the notebooks and the tests all call these same functions, so they all see the same
numbers. Every experiment takes ``quick``: a smaller, faster version for CI and classrooms on a
laptop (``LAMB_EDU_QUICK=1`` forces it, see ``quick_mode``). Results are host (NumPy) arrays; a
result's ``summary()`` gives the numbers that ``results.json`` records.

1. ``debias``: exponential moving averages with and without bias correction.
2. ``from_sgd_to_lamb``: SGD, momentum, Adam, AdamW, LARS and LAMB on a two-"layer" loss.
3. ``trust_ratio_histograms``: r, r1 = ‖w‖ and r2 = ‖u‖ per layer over MNIST training.
4. ``adam_vs_lamb``: Adam against LAMB on MNIST at lr 0.01.
5. ``learning_rate_and_weight_decay``: LAMB at lr 0.01, 0.1, 0.1 with weight decay; Adam at 0.1.
6. ``article_code_claim``: lr 0.02, batch 512, weight decay 0.01, as in the article's code.
7. ``large_batch``: SGD with Nesterov momentum, AdamW, LARS and LAMB from batch 128 to 16384.
8. ``tiny_bert``: the same four on a tiny BERT (masked characters of Shakespeare), trust ratios by kind.

The modules, one concept each:

- ``bias_correction``: experiment 1 (``debias``).
- ``sgd_to_lamb``: experiment 2 (``from_sgd_to_lamb``).
- ``mnist``: one MNIST run (``MnistSetting``, ``MnistRun``, ``train_mnist``).
- ``comparison``: several settings × seeds (``MnistComparison``, ``compare_settings``).
- ``article_mnist``: experiments 3 to 6, the article's MNIST runs.
- ``batch_sweep``: one run at a global batch size, and a grid of batch sizes × lrs (``sweep``).
- ``large_batch``: the large-batch study (``large_batch``, ``LargeBatchResult``).
- ``tiny_bert``: the tiny-BERT study (``tiny_bert``, ``TinyBertResult``).
- ``tuning``: the quasi-random tuning protocol (``SearchSpace``, ``tune``), used by the two studies.
- ``registry``: ``EXPERIMENTS`` by name, ``run_experiment`` and ``quick_mode``.
"""

from lamb_edu.experiments.article_mnist import (
    ADAM_VS_LAMB,
    ARTICLE_CODE,
    LEARNING_RATE_AND_WEIGHT_DECAY,
    adam_vs_lamb,
    article_code_claim,
    learning_rate_and_weight_decay,
    trust_ratio_histograms,
    with_rule,
)
from lamb_edu.experiments.batch_sweep import BatchRun, StudyData, study_data, sweep, train_at_batch
from lamb_edu.experiments.bias_correction import (
    DebiasResult,
    bias_correction_factor,
    debias,
    exponential_moving_average,
    uncorrected_step_ratio,
)
from lamb_edu.experiments.comparison import QUICK_TEST_SIZE, QUICK_TRAIN_SIZE, SEEDS, MnistComparison, compare_settings
from lamb_edu.experiments.large_batch import STUDY_OPTIMIZERS, LargeBatchResult, StudyOptimizer, large_batch
from lamb_edu.experiments.mnist import (
    MNIST_NETWORK,
    NETWORKS,
    RULES,
    RUN_CACHE,
    MnistRun,
    MnistSetting,
    Rule,
    RunCache,
    train_mnist,
)
from lamb_edu.experiments.registry import (
    COMMITTED_RESULTS,
    EXPERIMENTS,
    QUICK_ENVIRONMENT_VARIABLE,
    committed_results,
    quick_mode,
    run_experiment,
)
from lamb_edu.experiments.sgd_to_lamb import (
    LAYER_OPTIMA,
    LAYER_STARTS,
    TWO_LAYER_OPTIMIZERS,
    VECTOR_LAYER_OPTIMIZERS,
    TrajectoryResult,
    from_sgd_to_lamb,
    lamb_on_vector_layers,
    run_two_layers,
    run_vector_layers,
    two_layer_loss,
    vector_layers_comparison,
    vector_layers_problem,
)
from lamb_edu.experiments.tiny_bert import TinyBertResult, TinyBertRun, TinyBertSettings, tiny_bert
from lamb_edu.train.divergence import CHANCE_LOSS, Divergence, detect_divergence, smoothed_loss

__all__ = [
    "quick_mode",
    "exponential_moving_average",
    "bias_correction_factor",
    "uncorrected_step_ratio",
    "DebiasResult",
    "debias",
    "two_layer_loss",
    "TrajectoryResult",
    "from_sgd_to_lamb",
    "run_two_layers",
    "vector_layers_problem",
    "lamb_on_vector_layers",
    "run_vector_layers",
    "vector_layers_comparison",
    "VECTOR_LAYER_OPTIMIZERS",
    "NETWORKS",
    "MnistSetting",
    "MnistRun",
    "MnistComparison",
    "compare_settings",
    "Divergence",
    "smoothed_loss",
    "detect_divergence",
    "train_mnist",
    "trust_ratio_histograms",
    "adam_vs_lamb",
    "learning_rate_and_weight_decay",
    "article_code_claim",
    "BatchRun",
    "StudyData",
    "study_data",
    "train_at_batch",
    "sweep",
    "StudyOptimizer",
    "STUDY_OPTIMIZERS",
    "LargeBatchResult",
    "TinyBertResult",
    "TinyBertRun",
    "TinyBertSettings",
    "tiny_bert",
    "large_batch",
    "EXPERIMENTS",
    "run_experiment",
    "QUICK_ENVIRONMENT_VARIABLE",
    "ADAM_VS_LAMB",
    "ARTICLE_CODE",
    "LEARNING_RATE_AND_WEIGHT_DECAY",
    "with_rule",
    "QUICK_TEST_SIZE",
    "QUICK_TRAIN_SIZE",
    "SEEDS",
    "CHANCE_LOSS",
    "MNIST_NETWORK",
    "Rule",
    "RULES",
    "RunCache",
    "RUN_CACHE",
    "LAYER_OPTIMA",
    "LAYER_STARTS",
    "TWO_LAYER_OPTIMIZERS",
    "COMMITTED_RESULTS",
    "committed_results",
]
