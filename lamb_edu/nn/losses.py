"""Losses with their inputs checked before the graph operation runs."""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import IGNORE_INDEX, masked_softmax_cross_entropy, softmax_cross_entropy

__all__ = ["cross_entropy", "masked_lm_cross_entropy"]


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


def masked_lm_cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """The masked-LM loss: mean cross-entropy over the positions whose target is not -100.

    ``logits`` is (batch, seq, vocab) (or (N, vocab)) and ``targets`` integers of shape (batch, seq)
    (or (N,)): a class index where a position was masked, -100 (PyTorch's ``ignore_index``) where it
    was not. One graph node (``functional.masked_softmax_cross_entropy``); a batch with no target
    has loss 0. Bad shapes, dtypes or values raise ValueError before anything is computed.
    """
    targets = backend.asarray(targets)
    if logits.ndim < 2 or targets.shape != logits.shape[:-1] or targets.dtype.kind not in "iu":
        raise ValueError(f"masked_lm_cross_entropy expects integer targets of shape {logits.shape[:-1]} "
                         f"for logits of shape {logits.shape}, got shape {targets.shape} of {targets.dtype}")
    classes = logits.shape[-1]
    bad = ((targets < 0) | (targets >= classes)) & (targets != IGNORE_INDEX)
    if targets.size and bool(bad.any()):  # one wait on a GPU, as cross_entropy's check
        raise ValueError(f"masked_lm_cross_entropy targets must be class indices in [0, {classes}) or "
                         f"{IGNORE_INDEX}, got values from {int(targets.min())} to {int(targets.max())}")
    return masked_softmax_cross_entropy(logits, targets)
