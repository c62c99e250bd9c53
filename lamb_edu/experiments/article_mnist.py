"""Experiments 3 to 6: the article's MNIST runs, each a tuple of settings and what the article reports.

3. ``trust_ratio_histograms``: r, r1 and r2 per layer through training.
4. ``adam_vs_lamb``: Adam against LAMB at lr 0.01.
5. ``learning_rate_and_weight_decay``: LAMB at lr 0.01, 0.1, 0.1 with weight decay; Adam at 0.1.
6. ``article_code_claim``: lr 0.02, batch 512, weight decay 0.01, the claim of the code's June README.

Experiments 3, 4 and 5 run the rule the article ran (``rule="may2019"``, ``optim.LAMB2019``); 6 keeps
the June 2019 rule its claim was made with (``ARTICLE_CODE``). ``rule`` chooses the other for 3 to 5.
All four train the article's CNN in full mode and the MLP in quick mode (CI, notebooks), unless
``network`` says otherwise. Experiments 3, 4 and 5 score the test subset alike, so they share runs:
3 is 4's seed 0, and 5's lr 0.01 is 4's LAMB (``train_mnist`` trains each once per process).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from lamb_edu.experiments.comparison import MnistComparison, compare_settings
from lamb_edu.experiments.mnist import RULES, MnistSetting

__all__ = [
    "EVALUATE_EVERY",
    "default_network",
    "with_rule",
    "ADAM_VS_LAMB",
    "LEARNING_RATE_AND_WEIGHT_DECAY",
    "ARTICLE_CODE",
    "trust_ratio_histograms",
    "adam_vs_lamb",
    "learning_rate_and_weight_decay",
    "article_code_claim",
]

EVALUATE_EVERY = 20  # 2000 test images scored every 20 steps: experiment 5's story is at steps 30 to 300
# Experiment 5's lr-0.1 runs on the CNN in full mode (a CNN epoch costs about a CPU-minute here): the runs
# without weight decay turn within the first 100 steps on the MLP, so 2 epochs (236 steps); with weight decay
# 3 (354 steps). The MLP trains them 5 epochs (590 steps), as every other run.
CNN_LR_01_EPOCHS = {"LAMB lr 0.1": 2, "LAMB lr 0.1, wd 0.01": 3, "Adam lr 0.1": 2}


def default_network(network: str | None, quick: bool) -> str:
    """``network`` if given, else the article's CNN in full mode and the MLP in quick mode."""
    return network if network is not None else ("mlp" if quick else "cnn")


def with_rule(settings: Sequence[MnistSetting], rule: str) -> tuple[MnistSetting, ...]:
    """``settings`` under ``rule`` (a key of ``experiments.mnist.RULES``).

    Under the June rule the "Adam" side is not Adam (no bias correction, decoupled decay), so its label
    becomes "Adam baseline ..." (``baseline_label``); under the May rule it is Adam and keeps its label.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    return tuple(replace(setting, rule=rule, label=baseline_label(setting.label, rule, setting.use_trust_ratio))
                 for setting in settings)


def baseline_label(label: str, rule: str, use_trust_ratio: bool) -> str:
    """``label`` as figures show it under ``rule``: "Adam ..." becomes "Adam baseline ..." under the June rule."""
    if rule == "june2019" and not use_trust_ratio and label.startswith("Adam ") and "baseline" not in label:
        return "Adam baseline " + label[len("Adam "):]
    return label


def _quotes(article: dict[str, str], settings: Sequence[MnistSetting]) -> dict[str, str]:
    """What the article says, keyed by the settings' labels under their rule."""
    return {baseline_label(label, settings[0].rule, use_trust_ratio=label.startswith("LAMB")): quote
            for label, quote in article.items()}


# 3 and 4: Adam against LAMB at lr 0.01, betas (0.9, 0.99), the rule the article ran
ADAM_VS_LAMB = (
    MnistSetting("Adam lr 0.01", lr=0.01, betas=(0.9, 0.99), use_trust_ratio=False, rule="may2019"),
    MnistSetting("LAMB lr 0.01", lr=0.01, betas=(0.9, 0.99), rule="may2019"),
)
# What the article says (quoted from its text, in English).
ADAM_VS_LAMB_ARTICLE = {"Adam lr 0.01": "very similar to LAMB",
                        "LAMB lr 0.01": "very similar to Adam, but LAMB generalises better in test accuracy"}


def adam_vs_lamb(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False,
                 network: str | None = None, rule: str = "may2019") -> MnistComparison:
    """Experiment 4: Adam against LAMB on MNIST at lr 0.01, betas (0.9, 0.99), batch 512.

    Training loss and test accuracy against steps, from each seed. Full: 5 epochs of the 60000
    training images, tested on all 10000; quick: 8 epochs of 12000 from seed 0, tested on 2000. The
    first 2000 test images are also scored every ``EVALUATE_EVERY`` steps.
    """
    settings = with_rule(ADAM_VS_LAMB, rule)
    return compare_settings("adam_vs_lamb", settings, seeds, quick, data_dir, progress,
                            _quotes(ADAM_VS_LAMB_ARTICLE, settings), quick_epochs=8,
                            network=default_network(network, quick), evaluate_every=EVALUATE_EVERY)


def trust_ratio_histograms(quick: bool = False, seed: int = 0, data_dir: Any = None, progress: bool = False,
                           network: str | None = None, rule: str = "may2019") -> MnistComparison:
    """Experiment 3: the runs of experiment 4 from one seed, for their logged r, r1 and r2 per layer.

    Both LAMB and its Adam baseline compute r, r1 and r2 for every parameter (every 5 steps); only
    LAMB steps with r. Under the May rule r1 = RMS(w), r2 = RMS(adam step), r = min(r1/r2, 10), as the
    article's histograms; under the June rule r1 = ‖w‖, r2 = ‖u‖ (``MnistRun.r1``, ``MnistRun.r2``).
    """
    article = {"Adam lr 0.01": "r starts below 1",
               "LAMB lr 0.01": "r starts below 1, a natural warm-up for every layer; then r lets layers with larger "
                               "weights and steadier gradients take larger steps, which inflates the norms "
                               "relative to the Adam baseline"}
    settings = with_rule(ADAM_VS_LAMB, rule)
    return compare_settings("trust_ratio", settings, (seed,), quick, data_dir, progress, _quotes(article, settings),
                            quick_epochs=8, network=default_network(network, quick), evaluate_every=EVALUATE_EVERY)


# 5: learning rate and weight decay (on the CNN in full mode the lr-0.1 runs are shorter: CNN_LR_01_EPOCHS)
LEARNING_RATE_AND_WEIGHT_DECAY = (
    ADAM_VS_LAMB[1],
    MnistSetting("LAMB lr 0.1", lr=0.1, betas=(0.9, 0.99), rule="may2019"),
    MnistSetting("LAMB lr 0.1, wd 0.01", lr=0.1, betas=(0.9, 0.99), weight_decay=0.01, rule="may2019"),
    MnistSetting("Adam lr 0.1", lr=0.1, betas=(0.9, 0.99), use_trust_ratio=False, rule="may2019"),
)


def learning_rate_and_weight_decay(
    quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False,
    network: str | None = None, rule: str = "may2019",
) -> MnistComparison:
    """Experiment 5: LAMB at lr 0.01, 0.1, and 0.1 with weight decay 0.01; Adam at 0.1.

    Each run gets a verdict from ``detect_divergence`` (learned, diverged and why, did not learn).
    Same data and network as experiment 4; lr 0.01 is experiment 4's run (5 epochs), and so are the
    lr-0.1 runs except on the CNN in full mode (``CNN_LR_01_EPOCHS``: 2 or 3) (quick: every run 12
    epochs of 12000, long enough to see the lr 0.1 runs turn). Besides the epoch-end test, every run scores the
    first 2000 test images every ``EVALUATE_EVERY`` steps (``MnistRun.evaluation_accuracy``).
    """
    article = {
        "LAMB lr 0.01": "learns",
        "LAMB lr 0.1": "converges almost at once during the warm-up, then some layers' weights explode and it diverges",
        "LAMB lr 0.1, wd 0.01": "training does not go off track; the trust ratio stays below 1 and goes up to 4.5",
        "Adam lr 0.1": "does not learn at all",
    }
    network = default_network(network, quick)
    settings = with_rule(LEARNING_RATE_AND_WEIGHT_DECAY, rule)
    if network == "cnn" and not quick:
        settings = tuple(replace(s, epochs=CNN_LR_01_EPOCHS.get(s.label, s.epochs)) for s in settings)
    return compare_settings("learning_rate_and_weight_decay", settings, seeds, quick, data_dir, progress,
                            _quotes(article, settings),
                            quick_epochs=12, network=network, evaluate_every=EVALUATE_EVERY)


# 6: the claim of the code's README from 16 June 2019 on (so the June rule): lr 0.02, batch 512, wd 0.01
ARTICLE_CODE = (
    MnistSetting("Adam baseline lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01,
                 use_trust_ratio=False, epochs=6, rule="june2019"),
    MnistSetting("LAMB lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, epochs=6, rule="june2019"),
)


def article_code_claim(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None,
                       progress: bool = False, network: str | None = None) -> MnistComparison:
    """Experiment 6: the code README's sample run, lr 0.02, batch 512, weight decay 0.01, betas (0.9, 0.999).

    That README (16 June 2019) made the claim with the June rule, so this one keeps it: no bias
    correction and ‖w‖ clamped at 10, for 6 epochs from seeds 0, 1, 2 (quick: 4 epochs of
    12000 from seed 0). Its README reports that Adam does not train (about 11 % test accuracy) while
    LAMB reaches about 98 %. The network: the article's CNN in full mode, the MLP in quick mode.
    """
    article = {"Adam baseline lr 0.02, wd 0.01": "about 11 % test accuracy",
               "LAMB lr 0.02, wd 0.01": "about 98 % test accuracy"}
    return compare_settings("article_code", ARTICLE_CODE, seeds, quick, data_dir, progress, article, quick_epochs=4,
                            network=default_network(network, quick))
