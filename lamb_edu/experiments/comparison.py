"""Several MNIST settings, each trained from several seeds on the same data: ``MnistComparison``.

``compare_settings`` is what every MNIST experiment calls: it loads MNIST, takes the quick subset
if asked, trains each setting from each seed with ``train_mnist`` and collects the runs. A new
MNIST study is a tuple of ``MnistSetting`` and one call to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from lamb_edu import backend, data
from lamb_edu.experiments.mnist import NETWORKS, RULES, MnistRun, MnistSetting, train_mnist

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = ["SEEDS", "QUICK_TRAIN_SIZE", "QUICK_TEST_SIZE", "MnistComparison", "compare_settings"]

SEEDS = (0, 1, 2)  # full runs; quick runs use the first only
QUICK_TRAIN_SIZE, QUICK_TEST_SIZE = 12000, 2000


@dataclass
class MnistComparison:
    """Several settings, each trained from several seeds on the same data (experiments 3 to 6)."""

    name: str
    settings: list[MnistSetting]
    seeds: tuple[int, ...]
    runs: dict[str, list[MnistRun]]  # setting label -> one run per seed, in the order of ``seeds``
    network: str  # a key of ``experiments.mnist.NETWORKS``
    train_size: int
    test_size: int
    quick: bool
    article: dict[str, str]  # what the article reports, per setting label

    def final_accuracies(self, label: str) -> Any:
        """The final test accuracy of setting ``label`` from each seed, in the order of ``seeds``."""
        return np.array([run.final_test_accuracy for run in self.runs[label]])

    @property
    def network_name(self) -> str:
        """The network as results and figures name it, e.g. "MLP 784-256-256-10"."""
        return NETWORKS[self.network]

    @property
    def rules(self) -> list[str]:
        """The LAMB rules the settings train with (keys of ``experiments.mnist.RULES``), in order, each once."""
        return list(dict.fromkeys(setting.rule for setting in self.settings))

    @property
    def rule_title(self) -> str:
        """The rules as figure titles name them, e.g. "May 2019 rule (pytorch-lamb ff2245e, ...)"."""
        return "; ".join(RULES[rule].title for rule in self.rules)

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: per setting, the accuracy over seeds and every run's summary."""
        out: dict[str, Any] = {
            "network": self.network_name, "rules": {rule: RULES[rule].title for rule in self.rules},
            "train_examples": self.train_size, "test_examples": self.test_size, "seeds": list(self.seeds),
            "quick": self.quick, "settings": {},
        }
        for setting in self.settings:
            accuracies = self.final_accuracies(setting.label)
            statuses = [run.divergence.status for run in self.runs[setting.label]]
            out["settings"][setting.label] = {
                **setting.describe(),
                "final_test_accuracy_mean": float(np.mean(accuracies)),
                "final_test_accuracy_std": float(np.std(accuracies)),
                "final_test_accuracy_min": float(np.min(accuracies)),
                "final_test_accuracy_max": float(np.max(accuracies)),
                "status_per_seed": statuses,
                "article": self.article.get(setting.label),
                "runs": [run.summary() for run in self.runs[setting.label]],
            }
        return out


def compare_settings(
    name: str, settings: Sequence[MnistSetting], seeds: Sequence[int] | None, quick: bool, data_dir: Any,
    progress: bool, article: dict[str, str], quick_epochs: int, network: str = "mlp", evaluate_every: int | None = None,
) -> MnistComparison:
    """Train every setting from every seed on MNIST and collect the runs as the comparison ``name``.

    Full: all 60000 training images, tested on all 10000, from ``seeds`` (default ``SEEDS``). Quick:
    the first ``QUICK_TRAIN_SIZE`` training and ``QUICK_TEST_SIZE`` test images, ``quick_epochs``
    epochs, from seed 0 by default. ``article`` says what the article reports per setting label;
    ``progress`` shows one progress bar over all the runs. ``network`` and ``evaluate_every`` go to
    ``train_mnist`` (the network trained; every how many steps a test subset is scored).
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    full = data.load_mnist(data_dir)
    train_size = QUICK_TRAIN_SIZE if quick else len(full.train_labels)
    test_size = QUICK_TEST_SIZE if quick else len(full.test_labels)
    subset = full._replace(test_images=full.test_images[:test_size], test_labels=full.test_labels[:test_size])
    if quick:
        settings = [replace(setting, epochs=quick_epochs) for setting in settings]
    seeds = tuple(int(seed) for seed in (seeds if seeds is not None else (SEEDS[:1] if quick else SEEDS)))
    jobs = [(setting, seed) for setting in settings for seed in seeds]
    steps_per_run = [setting.epochs * math.ceil(train_size / setting.batch_size) for setting, _ in jobs]
    bar = _progress(progress, sum(steps_per_run), name)
    runs: dict[str, list[MnistRun]] = {setting.label: [] for setting in settings}
    done = 0
    for (setting, seed), steps in zip(jobs, steps_per_run):
        if bar is not None:
            bar.set_postfix_str(f"{setting.label}, seed {seed}")
        on_step = (lambda step, start=done: bar.update(start + step - bar.n)) if bar is not None else None
        runs[setting.label].append(train_mnist(setting, seed, subset, train_size if quick else None, on_step=on_step,
                                               network=network, evaluate_every=evaluate_every))
        done += steps
        if bar is not None:
            bar.update(done - bar.n)  # a run that stopped early, or came from the cache
    if bar is not None:
        bar.close()
    return MnistComparison(name, list(settings), seeds, runs, network, train_size, test_size, quick, article)


def _progress(enabled: bool, total: int, description: str, unit: str = "step") -> Any:
    """A tqdm bar of ``total`` steps (or other ``unit``), or None when ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit != "step", dynamic_ncols=True)
