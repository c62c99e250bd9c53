"""Dense layers' operations, each one graph node with its gradient written by hand.

``linear`` and ``softmax_cross_entropy`` compute what a few ``Tensor`` operations compute together, in one
node, so that there are fewer passes over memory and no temporary arrays. The composed form in each
docstring is the reference, and the tests check that both agree. ``flatten`` is a reshape.
"""

from __future__ import annotations

from typing import Any

from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp

__all__ = ["linear", "softmax_cross_entropy", "flatten"]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The fully connected layer ``x @ weight.T + bias`` as one operation (what ``nn.Linear`` uses).

    x is (batch, in_features) or (batch, seq, ..., in_features), weight (out_features, in_features), bias
    (out_features,) or None. Leading axes are joined into one for a single matrix product (a
    (batch, seq, in) input is a (batch·seq, in) matrix), and split again in the result.
    The same numbers as composing ``@``, ``.T`` and ``+``, with less work: the bias is added in place
    to the product, and on the way back ``grad_weight = grad.T @ x`` is one matrix product that
    comes out in the weight's own layout (the composed form gives a transposed view, which makes
    every later elementwise pass over it strided), ``grad_x = grad @ weight`` is computed only when
    x needs a gradient (never for the input batch), and ``grad_bias`` is the column sum of ``grad``.
    Inputs of other ranks, or a bias whose dtype would change the result's, use the composed form.
    """
    x = x if isinstance(x, Tensor) else weight._lift(x)
    if x.ndim < 2 or weight.ndim != 2 or (bias is not None and xp.result_type(x.data, weight.data, bias.data)
                                          != xp.result_type(x.data, weight.data)):
        out = x @ weight.T
        return out + bias if bias is not None else out
    rows = x.data.reshape(-1, x.shape[-1])  # (batch·seq, in): a view of a contiguous input
    data = rows @ weight.data.T
    if bias is not None:
        data += bias.data
    parents = (x, weight) if bias is None else (x, weight, bias)
    out = x._result(data.reshape(*x.shape[:-1], weight.shape[0]), parents, "linear")

    def _backward() -> None:
        grad = out.grad.reshape(-1, weight.shape[0])
        if x.requires_grad:
            x._accumulate((grad @ weight.data).reshape(x.shape))
        if weight.requires_grad:  # written straight into a gradient buffer when the weight has one
            weight._accumulate(xp.matmul(grad.T, rows, out=weight._grad_out()))
        if bias is not None and bias.requires_grad:
            bias._accumulate(grad.sum(axis=0, out=bias._grad_out()))

    out._backward = _backward
    return out


def softmax_cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean over the batch of ``-log_softmax(logits)[i, targets[i]]`` as one operation.

    The composed form is ``-(logits.log_softmax(axis=1) * one_hot).sum() / batch``. Forward uses the
    same log-sum-exp trick; the gradient is the closed form (softmax(logits) − one_hot(targets)) /
    batch, built from the softmax kept from the forward pass, so no one-hot matrix and no
    log_softmax/multiply/sum nodes are made. ``targets`` is an integer array of shape (batch,);
    ``nn.cross_entropy`` checks the shapes before calling this.
    """
    data = logits.data
    batch = data.shape[0]
    rows = xp.arange(batch)
    shifted = data - data.max(axis=1, keepdims=True)
    softmax = xp.exp(shifted)
    total = softmax.sum(axis=1, keepdims=True)
    loss = (xp.log(total[:, 0]) - shifted[rows, targets]).mean()
    out = logits._result(xp.asarray(loss, dtype=data.dtype), (logits,), "cross_entropy")
    if not out.requires_grad:
        return out
    softmax /= total

    def _backward() -> None:
        grad = softmax  # used once: the node is freed after its backward, so it is changed in place
        grad[rows, targets] -= 1
        grad *= out.grad / batch
        logits._accumulate(grad)

    out._backward = _backward
    return out


def flatten(x: Tensor) -> Tensor:
    """Keep the batch axis and join all the others: (N, C, H, W) becomes (N, C·H·W), in C order."""
    if x.ndim < 2:
        raise ValueError(f"flatten expects a batch of at least 1-D items, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)
