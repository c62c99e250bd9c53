"""Losses with their inputs checked before the graph operation runs."""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import softmax_cross_entropy

__all__ = ["cross_entropy"]


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean over the batch of -log softmax(logits)[target], for integer class labels.

    It equals ``-(logits.log_softmax(axis=1) * one_hot(targets)).sum() / batch``, computed as one
    graph node (``functional.softmax_cross_entropy``) whose gradient is (softmax − one_hot)/batch.
    The log-sum-exp trick keeps logits of ±1e4 finite.
    """
    targets = backend.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (batch, classes), got {logits.shape}")
    batch = logits.shape[0]
    if targets.shape != (batch,) or targets.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects {batch} integer targets, got shape {targets.shape} of {targets.dtype}")
    classes = logits.shape[1]
    # a -1 would index the last class; the check is one wait on a GPU
    if batch and bool(((targets < 0) | (targets >= classes)).any()):
        raise ValueError(f"cross_entropy targets must be class indices in [0, {classes}), "
                         f"got values from {int(targets.min())} to {int(targets.max())}")
    return softmax_cross_entropy(logits, targets)
