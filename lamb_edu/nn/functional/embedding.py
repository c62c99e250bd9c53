"""``embedding``: the rows of a table picked by integer ids, one graph node with its gradient written by hand."""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["embedding"]


def embedding(ids: Any, weight: Tensor) -> Tensor:
    """``weight[ids]``: one row of ``weight`` (num_embeddings, dim) per id; the result is ids.shape + (dim,).

    A gather. On the way back each row of the gradient is added to the row of ``weight.grad`` it came
    from, and an id that appears several times gets the sum of its rows (``add.at``; a plain
    ``grad[ids] += rows`` would keep only one of them). ``ids`` is an integer array on the active
    backend, already checked to lie in [0, num_embeddings) (``nn.Embedding`` checks it).
    """
    if weight.ndim != 2:
        raise ValueError(f"embedding expects a weight of shape (num_embeddings, dim), got {weight.shape}")
    out = weight._result(weight.data[ids], (weight,), "embedding")

    def _backward() -> None:
        grad = xp.zeros_like(weight.data)
        xp.add.at(grad, ids.reshape(-1), out.grad.reshape(-1, weight.shape[1]))
        weight._accumulate(grad)

    out._backward = _backward
    return out
