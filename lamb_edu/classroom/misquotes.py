"""Notebook 08's MNIST runs: the paper's LAMB against the misquoted rules of ``classroom.variants``.

Every rule trains the MNIST network from the same seed with the same settings (the paper's LAMB:
bias correction on, lr 0.01, betas (0.9, 0.999), weight decay 0.01), so only the one changed
piece differs; each run logs its per-layer trust ratios like experiments 3 to 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from lamb_edu import optim
from lamb_edu.classroom import variants
from lamb_edu.experiments.comparison import MnistComparison, compare_settings
from lamb_edu.experiments.mnist import MnistSetting

__all__ = ["RuleSetting", "MISQUOTES", "misquotes_on_mnist"]


@dataclass(frozen=True)
class RuleSetting(MnistSetting):
    """An ``MnistSetting`` that trains with ``optimizer_class`` (a LAMB subclass) instead of ``optim.LAMB``."""

    optimizer_class: type = optim.LAMB

    def make_optimizer(self, params: list[Any]) -> Any:
        """``optimizer_class`` with these settings over ``params``."""
        return self.optimizer_class(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay,
                         bias_correction=self.bias_correction, clamp_value=self.clamp_value,
                         use_trust_ratio=self.use_trust_ratio)

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON values, with the rule's class name."""
        return {**super().describe(), "optimizer": self.optimizer_class.__name__}


_PAPER = dict(lr=0.01, betas=(0.9, 0.999), weight_decay=0.01, bias_correction=True, epochs=3)
MISQUOTES = (
    RuleSetting("LAMB (paper)", optimizer_class=optim.LAMB, **_PAPER),
    *(RuleSetting(name, optimizer_class=cls, **_PAPER) for name, (cls, _) in variants.VARIANTS.items()
      if issubclass(cls, optim.LAMB)),
)


def misquotes_on_mnist(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None,
                       progress: bool = False) -> MnistComparison:
    """Train the paper's LAMB and each misquoted LAMB on MNIST (full: 3 epochs; quick: 2 epochs of 12000 images)."""
    article = {setting.label: "" for setting in MISQUOTES}
    return compare_settings("misquotes", MISQUOTES, seeds if seeds is not None else (0,), quick, data_dir, progress,
                            article, quick_epochs=2)
