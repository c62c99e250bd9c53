"""The same TinyBERT in PyTorch, for the benchmark and for the test that compares logits and gradients.

Same architecture, same parameter names and shapes as ``lamb_edu.nn.TinyBERT`` (so a ``state_dict``
moves between them), BERT's initialisation; PyTorch's own fast operations (fused layer norm,
``scaled_dot_product_attention``, ``gelu(approximate="tanh")``). PyTorch is a benchmark-only extra:
the library never imports this file.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

EPS = 1e-12


class Embeddings(nn.Module):
    def __init__(self, vocab_size: int, context: int, d_model: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.norm = nn.LayerNorm(d_model, eps=EPS)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.token(ids) + self.position.weight[: ids.shape[1]])


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query, self.key, self.value, self.output = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d_model = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, self.n_heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
        return self.output(out.transpose(1, 2).reshape(batch, seq, d_model))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.intermediate = nn.Linear(d_model, d_ff)
        self.output = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(F.gelu(self.intermediate(x), approximate="tanh"))


class Layer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.attention = Attention(d_model, n_heads)
        self.attention_norm = nn.LayerNorm(d_model, eps=EPS)
        self.ffn = FeedForward(d_model, d_ff)
        self.ffn_norm = nn.LayerNorm(d_model, eps=EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x))
        return self.ffn_norm(x + self.ffn(x))


class Head(nn.Module):
    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=EPS)
        self.bias = nn.Parameter(torch.zeros(vocab_size))


class TorchTinyBERT(nn.Module):
    """``TorchTinyBERT(vocab_size, context, d_model, n_layers, n_heads, d_ff)``: logits (batch, seq, vocab)."""

    def __init__(self, vocab_size: int, context: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4,
                 d_ff: int = 512) -> None:
        super().__init__()
        self.embeddings = Embeddings(vocab_size, context, d_model)
        self.layers = nn.ModuleList(Layer(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.head = Head(d_model, vocab_size)
        for module in self.modules():  # BERT's initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        h = self.head.norm(F.gelu(self.head.transform(x), approximate="tanh"))
        return F.linear(h, self.embeddings.token.weight, self.head.bias)  # the decoder tied to the token table
