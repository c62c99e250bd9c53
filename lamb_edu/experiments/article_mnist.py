"""Experiments 3 to 6: the article's MNIST runs, each a tuple of settings and what the article reports.

3. ``trust_ratio_histograms``: r, r1 = ‖w‖ and r2 = ‖u‖ per layer through training.
4. ``adam_vs_lamb``: Adam against LAMB at lr 0.01.
5. ``learning_rate_and_weight_decay``: LAMB at lr 0.01, 0.1, 0.1 with weight decay; Adam at 0.1.
6. ``article_code_claim``: lr 0.02, batch 512, weight decay 0.01, as in the article's code.

Experiments 3 and 6 train the article's CNN in full mode and the MLP in quick mode (CI, notebooks),
unless ``network`` says otherwise; 4 and 5 train the MLP (the CNN takes about 10× longer per epoch).
In quick mode experiments 3 and 4 train the same runs (``train_mnist`` trains them once per process).
"""

from __future__ import annotations

from typing import Any, Sequence

from lamb_edu.experiments.comparison import MnistComparison, compare_settings
from lamb_edu.experiments.mnist import MnistSetting

__all__ = [
    "EVALUATE_EVERY",
    "default_network",
    "ADAM_VS_LAMB",
    "LEARNING_RATE_AND_WEIGHT_DECAY",
    "ARTICLE_CODE",
    "trust_ratio_histograms",
    "adam_vs_lamb",
    "learning_rate_and_weight_decay",
    "article_code_claim",
]

EVALUATE_EVERY = 20  # experiment 5 scores 2000 test images every 20 steps: its story is at steps 30 to 300


def default_network(network: str | None, quick: bool) -> str:
    """``network`` if given, else the article's CNN in full mode and the MLP in quick mode."""
    return network if network is not None else ("mlp" if quick else "cnn")


# 3 and 4: Adam against LAMB at lr 0.01, betas (0.9, 0.99)
ADAM_VS_LAMB = (
    MnistSetting("Adam lr 0.01", lr=0.01, betas=(0.9, 0.99), use_trust_ratio=False),
    MnistSetting("LAMB lr 0.01", lr=0.01, betas=(0.9, 0.99)),
)


def adam_vs_lamb(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False) -> MnistComparison:
    """Experiment 4: Adam against LAMB on MNIST at lr 0.01, betas (0.9, 0.99), batch 512.

    Training loss and test accuracy against steps, from each seed. Full: 5 epochs of the 60000
    training images, tested on all 10000; quick: 8 epochs of 12000 from seed 0, tested on 2000.
    """
    article = {"Adam lr 0.01": "very similar to LAMB", "LAMB lr 0.01": "similar to Adam, better test accuracy"}
    return compare_settings("adam_vs_lamb", ADAM_VS_LAMB, seeds, quick, data_dir, progress, article, quick_epochs=8)


def trust_ratio_histograms(quick: bool = False, seed: int = 0, data_dir: Any = None, progress: bool = False,
                           network: str | None = None) -> MnistComparison:
    """Experiment 3: the settings of experiment 4 from one seed, for their logged r, r1 and r2 per layer.

    Both LAMB and its Adam baseline compute the trust ratio r = φ(‖w‖)/‖u‖, the weight norm r1 = ‖w‖
    and the update norm r2 = ‖u‖ of every parameter (every 5 steps); only LAMB steps with r. The
    network: the article's CNN in full mode, the MLP in quick mode (then these are experiment 4's runs).
    """
    article = {"Adam lr 0.01": "r starts below 1", "LAMB lr 0.01": "r starts below 1 (a natural warm-up), then rises"}
    return compare_settings("trust_ratio", ADAM_VS_LAMB, (seed,), quick, data_dir, progress, article, quick_epochs=8,
                            network=default_network(network, quick))


# 5: learning rate and weight decay
LEARNING_RATE_AND_WEIGHT_DECAY = (
    ADAM_VS_LAMB[1],
    MnistSetting("LAMB lr 0.1", lr=0.1, betas=(0.9, 0.99)),
    MnistSetting("LAMB lr 0.1, wd 0.01", lr=0.1, betas=(0.9, 0.99), weight_decay=0.01),
    MnistSetting("Adam lr 0.1", lr=0.1, betas=(0.9, 0.99), use_trust_ratio=False),
)


def learning_rate_and_weight_decay(
    quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False,
) -> MnistComparison:
    """Experiment 5: LAMB at lr 0.01, 0.1, and 0.1 with weight decay 0.01; Adam at 0.1.

    Each run gets a verdict from ``detect_divergence`` (learned, diverged and why, did not learn).
    Same data and network as experiment 4: 5 epochs (quick: 12 epochs of 12000, long enough to see
    the lr 0.1 runs turn). Besides the epoch-end test, every run scores the first 2000 test images
    every ``EVALUATE_EVERY`` steps (``MnistRun.evaluation_accuracy``).
    """
    article = {
        "LAMB lr 0.01": "learns",
        "LAMB lr 0.1": "converges almost at once, then some layers' weights explode and it diverges",
        "LAMB lr 0.1, wd 0.01": "does not diverge; the trust ratio reaches about 4.5",
        "Adam lr 0.1": "does not learn at all",
    }
    return compare_settings("learning_rate_and_weight_decay", LEARNING_RATE_AND_WEIGHT_DECAY, seeds, quick, data_dir,
                            progress, article, quick_epochs=12, evaluate_every=EVALUATE_EVERY)


# 6: the claim of the article's code (pytorch-lamb's README): lr 0.02, batch 512, wd 0.01
ARTICLE_CODE = (
    MnistSetting("Adam lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, use_trust_ratio=False, epochs=6),
    MnistSetting("LAMB lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, epochs=6),
)


def article_code_claim(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None,
                       progress: bool = False, network: str | None = None) -> MnistComparison:
    """Experiment 6: the article code's sample run, lr 0.02, batch 512, weight decay 0.01, betas (0.9, 0.999).

    No bias correction and ‖w‖ clamped at 10, for 6 epochs from seeds 0, 1, 2 (quick: 4 epochs of
    12000 from seed 0). Its README reports that Adam does not train (about 11 % test accuracy) while
    LAMB reaches about 98 %. The network: the article's CNN in full mode, the MLP in quick mode.
    """
    article = {"Adam lr 0.02, wd 0.01": "about 11 % test accuracy", "LAMB lr 0.02, wd 0.01": "about 98 % test accuracy"}
    return compare_settings("article_code", ARTICLE_CODE, seeds, quick, data_dir, progress, article, quick_epochs=4,
                            network=default_network(network, quick))
