"""The colour of each MNIST setting, shared by every figure of an ``experiments.MnistComparison``.

Colours follow the article: Adam blue, LAMB red; comparisons of more settings take them in order.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SETTING_COLORS", "setting_color"]

SETTING_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def setting_color(comparison: Any, label: str) -> str:
    """The colour of setting ``label`` in ``comparison``: blue and red for a two-setting Adam/LAMB pair."""
    labels = [setting.label for setting in comparison.settings]
    if len(labels) == 2 and label.startswith(("Adam", "LAMB")):
        return "tab:blue" if label.startswith("Adam") else "tab:red"
    return SETTING_COLORS[labels.index(label) % len(SETTING_COLORS)]
