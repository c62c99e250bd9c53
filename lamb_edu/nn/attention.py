"""``MultiHeadSelfAttention``: BERT's self-attention, with separate query, key, value and output projections."""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import scaled_dot_product_attention, self_attention
from lamb_edu.nn.init import bert_linear
from lamb_edu.nn.module import Module

__all__ = ["MultiHeadSelfAttention"]


class MultiHeadSelfAttention(Module):
    """Self-attention over (batch, seq, d_model) with ``n_heads`` heads of d_model / n_heads features.

    q, k and v are three ``Linear`` projections of x (``query``, ``key``, ``value``, each (D, D)), split
    into heads as (batch, heads, seq, d_head); each head attends with
    ``functional.scaled_dot_product_attention``; the heads are joined again and projected by
    ``output``. ``forward`` computes the first steps as one node (``functional.self_attention``: the
    three projections in one matrix product); ``composed`` builds them from the pieces. Four separate
    tensors, as in BERT, so that each has its own trust ratio. Initialised
    as BERT: weights normal(0, 0.02²), biases 0, drawn from ``rng`` (or a generator seeded ``seed``).
    """

    def __init__(self, d_model: int, n_heads: int, seed: int | None = None, dtype: Any = None,
                 rng: Any = None) -> None:
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"MultiHeadSelfAttention needs n_heads >= 1 dividing d_model, "
                             f"got d_model={d_model}, n_heads={n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        rng = rng if rng is not None else backend.generator(seed)
        self.query = bert_linear(d_model, d_model, rng, dtype)
        self.key = bert_linear(d_model, d_model, rng, dtype)
        self.value = bert_linear(d_model, d_model, rng, dtype)
        self.output = bert_linear(d_model, d_model, rng, dtype)

    def _heads(self, x: Tensor) -> Tensor:
        """(batch, seq, D) to (batch, heads, seq, d_head): a view, no copy."""
        batch, seq, _ = x.shape
        return x.reshape(batch, seq, self.n_heads, self.d_model // self.n_heads).transpose(0, 2, 1, 3)

    def forward(self, x: Tensor, mask: Any = None) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects inputs of shape (batch, seq, {self.d_model}), got {x.shape}")
        projections = [(layer.weight, layer.bias) for layer in (self.query, self.key, self.value)]
        return self.output(self_attention(x, projections, self.n_heads, mask))

    def composed(self, x: Tensor, mask: Any = None) -> Tensor:
        """The same result from the separate pieces: three ``Linear`` layers, heads split by reshape and
        transpose, ``scaled_dot_product_attention``, heads joined, ``output`` (what ``forward`` fuses)."""
        batch, seq, _ = x.shape
        heads = scaled_dot_product_attention(self._heads(self.query(x)), self._heads(self.key(x)),
                                             self._heads(self.value(x)), mask)
        return self.output(heads.transpose(0, 2, 1, 3).reshape(batch, seq, self.d_model))

    def __repr__(self) -> str:
        return f"MultiHeadSelfAttention(d_model={self.d_model}, n_heads={self.n_heads})"
