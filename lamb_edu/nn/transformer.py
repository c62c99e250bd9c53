"""``TransformerEncoderLayer``: BERT's encoder block, post-LN, without dropout."""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.attention import MultiHeadSelfAttention
from lamb_edu.nn.functional import gelu
from lamb_edu.nn.init import bert_linear
from lamb_edu.nn.module import Module
from lamb_edu.nn.normalization import LayerNorm

__all__ = ["FeedForward", "TransformerEncoderLayer"]

BERT_LAYER_NORM_EPS = 1e-12


class FeedForward(Module):
    """``output(gelu(intermediate(x)))``: D → d_ff → D, with GELU (tanh approximation) between."""

    def __init__(self, d_model: int, d_ff: int, rng: Any, dtype: Any = None) -> None:
        self.intermediate = bert_linear(d_model, d_ff, rng, dtype)
        self.output = bert_linear(d_ff, d_model, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(gelu(self.intermediate(x)))

    def __repr__(self) -> str:
        return f"FeedForward({self.intermediate.in_features}, {self.intermediate.out_features})"


class TransformerEncoderLayer(Module):
    """One BERT layer on (batch, seq, d_model), post-LN as in the original Transformer and BERT:

        x = attention_norm(x + attention(x))
        x = ffn_norm(x + ffn.output(gelu(ffn.intermediate(x))))

    Parameters ``attention.{query,key,value,output}.*``, ``attention_norm.*``,
    ``ffn.intermediate.*`` (d_ff, D), ``ffn.output.*`` (D, d_ff), ``ffn_norm.*``; initialised as BERT
    (normal(0, 0.02²) weights, zero biases, LayerNorm 1/0, eps 1e-12), drawn from ``rng`` or a
    generator seeded ``seed``. No dropout.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, seed: int | None = None, dtype: Any = None,
                 rng: Any = None, eps: float = BERT_LAYER_NORM_EPS) -> None:
        if d_ff < 1:
            raise ValueError(f"TransformerEncoderLayer needs d_ff >= 1, got {d_ff}")
        rng = rng if rng is not None else backend.generator(seed)
        self.attention = MultiHeadSelfAttention(d_model, n_heads, rng=rng, dtype=dtype)
        self.attention_norm = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.ffn = FeedForward(d_model, d_ff, rng, dtype)
        self.ffn_norm = LayerNorm(d_model, eps=eps, dtype=dtype)

    def forward(self, x: Tensor, mask: Any = None) -> Tensor:
        x = self.attention_norm(x + self.attention(x, mask))
        return self.ffn_norm(x + self.ffn(x))

    def __repr__(self) -> str:
        attention = self.attention
        return (f"TransformerEncoderLayer(d_model={attention.d_model}, n_heads={attention.n_heads}, "
                f"d_ff={self.ffn.intermediate.out_features})")
