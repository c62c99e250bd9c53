"""``masked_softmax_cross_entropy``: the masked-LM loss, one graph node with its gradient written by hand."""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["IGNORE_INDEX", "masked_softmax_cross_entropy"]

IGNORE_INDEX = -100  # PyTorch's ignore_index: a target with this value is not predicted


def masked_softmax_cross_entropy(logits: Tensor, targets: Any, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """The mean of −log softmax(logits)[target] over the positions whose target is not ``ignore_index``.

    ``logits`` is (..., classes) and ``targets`` an integer array of the leading shape, as
    ``torch.nn.functional.cross_entropy(logits.reshape(-1, C), targets.reshape(-1), ignore_index=-100)``.
    In masked-LM training only the masked positions have a target; the rest are ``ignore_index``.
    With n the number of counted positions, the gradient is (softmax − one_hot)/n on counted rows
    and 0 on the others. A batch with no counted position has loss 0 and gradient 0 (PyTorch gives
    nan), so one unlucky batch does not stop training. ``nn.masked_lm_cross_entropy`` checks the
    targets before calling this; the count stays on the device (no wait for it).
    """
    classes = logits.shape[-1]
    data = logits.data.reshape(-1, classes)
    flat = targets.reshape(-1)
    counted = flat != ignore_index
    picked = xp.where(counted, flat, 0)  # any valid class for ignored rows; their loss is multiplied by 0
    rows = xp.arange(data.shape[0])
    shifted = data - data.max(axis=1, keepdims=True)
    softmax = xp.exp(shifted)
    total = softmax.sum(axis=1)
    weight = counted.astype(data.dtype)
    weight /= xp.maximum(weight.sum(), 1.0)  # 1/n on counted rows, 0 elsewhere
    loss = ((xp.log(total) - shifted[rows, picked]) * weight).sum()
    out = logits._result(xp.asarray(loss, dtype=data.dtype), (logits,), "masked_cross_entropy")
    if not out.requires_grad:
        return out

    def _backward() -> None:
        grad = softmax  # used once: the node is freed after its backward, so it is changed in place
        grad /= total[:, None]
        grad[rows, picked] -= 1
        grad *= (weight * out.grad)[:, None]
        logits._accumulate(grad.reshape(logits.shape))

    out._backward = _backward
    return out
