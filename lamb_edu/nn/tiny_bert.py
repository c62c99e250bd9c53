"""``TinyBERT``: BERT's architecture at a size a laptop trains, with its masked-LM head.

    x = embeddings.norm(token[ids] + position[0..seq−1])
    each layer: x = attention_norm(x + attention(x)); x = ffn_norm(x + ffn.output(gelu(ffn.intermediate(x))))
    logits = head.norm(gelu(head.transform(x))) · token.weightᵀ + head.bias

Post-LN, no dropout, LayerNorm eps 1e-12, BERT's initialisation (normal(0, 0.02²) weights and
embeddings, LayerNorm 1/0, biases 0). The decoder is the token embedding itself (tied, as in BERT):
one tensor that gets gradient from both ends. ``parameter_kind`` names what each tensor is, for the
per-kind trust-ratio figure.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.nn.embedding import Embedding
from lamb_edu.nn.functional import embedding, gelu, linear
from lamb_edu.nn.init import bert_linear, constant_parameter
from lamb_edu.nn.module import Module
from lamb_edu.nn.normalization import LayerNorm
from lamb_edu.nn.transformer import BERT_LAYER_NORM_EPS, TransformerEncoderLayer

__all__ = ["TinyBERT", "BertEmbeddings", "MaskedLMHead", "PARAMETER_KINDS", "parameter_kind", "group_by_kind"]


class BertEmbeddings(Module):
    """``norm(token[ids] + position[0..seq−1])``: parameters ``token.weight`` (V, D), ``position.weight``
    (context, D) and ``norm.*``."""

    def __init__(self, vocab_size: int, context: int, d_model: int, rng: Any, dtype: Any = None) -> None:
        self.token = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.position = Embedding(context, d_model, rng=rng, dtype=dtype)
        self.norm = LayerNorm(d_model, eps=BERT_LAYER_NORM_EPS, dtype=dtype)

    def forward(self, ids: Any) -> Tensor:
        tokens = self.token(ids)  # checks the ids
        positions = embedding(xp.arange(tokens.shape[-2]), self.position.weight)  # (seq, D), added to every row
        return self.norm(tokens + positions)


class MaskedLMHead(Module):
    """``norm(gelu(transform(x))) · decoder_weightᵀ + bias``: BERT's masked-LM head.

    ``decoder_weight`` is passed in (the token embedding, tied), so it is not a second parameter here.
    """

    def __init__(self, d_model: int, vocab_size: int, rng: Any, dtype: Any = None) -> None:
        self.transform = bert_linear(d_model, d_model, rng, dtype)
        self.norm = LayerNorm(d_model, eps=BERT_LAYER_NORM_EPS, dtype=dtype)
        self.bias = constant_parameter(0.0, (vocab_size,), dtype)

    def forward(self, x: Tensor, decoder_weight: Tensor) -> Tensor:
        return linear(self.norm(gelu(self.transform(x))), decoder_weight, self.bias)


class TinyBERT(Module):
    """BERT for masked-character modelling: ``model(ids)`` maps integer ids (batch, seq ≤ context) to
    logits (batch, seq, vocab_size).

    Parameters (exactly these names; Linear weights are (out, in)): ``embeddings.token.weight`` (V, D),
    ``embeddings.position.weight`` (context, D), ``embeddings.norm.weight``/``.bias``; for each layer i
    ``layers.{i}.attention.{query,key,value,output}.weight`` (D, D) and ``.bias``,
    ``layers.{i}.attention_norm.*``, ``layers.{i}.ffn.intermediate.weight`` (d_ff, D) and ``.bias``,
    ``layers.{i}.ffn.output.weight`` (D, d_ff) and ``.bias``, ``layers.{i}.ffn_norm.*``; then
    ``head.transform.weight`` (D, D) and ``.bias``, ``head.norm.*`` and ``head.bias`` (V). All drawn from
    one host generator seeded ``seed`` (or the library-wide one), so a seed fixes the model on every backend.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4,
                 d_ff: int = 512, seed: int | None = None, dtype: Any = None) -> None:
        sizes = dict(vocab_size=vocab_size, context=context, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                     d_ff=d_ff)
        if any(not isinstance(size, int) or isinstance(size, bool) or size < 1 for size in sizes.values()):
            raise ValueError(f"TinyBERT needs positive integer sizes, got {sizes}")
        if d_model % n_heads:
            raise ValueError(f"TinyBERT needs n_heads dividing d_model, got d_model={d_model}, n_heads={n_heads}")
        self.vocab_size, self.context, self.d_model = vocab_size, context, d_model
        self.n_layers, self.n_heads, self.d_ff = n_layers, n_heads, d_ff
        rng = backend.generator(seed)
        self.embeddings = BertEmbeddings(vocab_size, context, d_model, rng, dtype)
        self.layers = [TransformerEncoderLayer(d_model, n_heads, d_ff, rng=rng, dtype=dtype) for _ in range(n_layers)]
        self.head = MaskedLMHead(d_model, vocab_size, rng, dtype)

    def forward(self, ids: Any) -> Tensor:
        data = backend.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if data.dtype.kind not in "iu":
            raise ValueError(f"TinyBERT takes integer character ids, got an array of {data.dtype}")
        if data.ndim != 2 or not 1 <= data.shape[1] <= self.context:
            raise ValueError(f"TinyBERT takes ids of shape (batch, seq) with 1 <= seq <= context={self.context}, "
                             f"got shape {tuple(data.shape)}")
        x = self.embeddings(data)
        for layer in self.layers:
            x = layer(x)
        return self.head(x, self.embeddings.token.weight)

    def __repr__(self) -> str:
        return (f"TinyBERT(vocab_size={self.vocab_size}, context={self.context}, d_model={self.d_model}, "
                f"n_layers={self.n_layers}, n_heads={self.n_heads}, d_ff={self.d_ff})")


# ------------------------------------------------------------------------------ tensors by kind
PARAMETER_KINDS = ("embeddings", "query", "key", "value", "attention output", "FFN", "LayerNorm γ", "LayerNorm β",
                   "biases", "head")


def parameter_kind(name: str) -> str:
    """What a TinyBERT tensor is, from its name: one of ``PARAMETER_KINDS``.

    Token and position embeddings are ``embeddings``; the (D, D) attention weights are ``query``,
    ``key``, ``value`` and ``attention output``; both FFN weights are ``FFN``; every LayerNorm's
    weight is ``LayerNorm γ`` and its bias ``LayerNorm β``; ``head.transform.weight`` is ``head``;
    the biases of the linear layers and ``head.bias`` are ``biases``.
    """
    parts = name.split(".")
    if parts[0] == "embeddings" and parts[1] in ("token", "position"):
        return "embeddings"
    if parts[-2].endswith("norm"):
        return "LayerNorm γ" if parts[-1] == "weight" else "LayerNorm β"
    if parts[-1] == "bias":
        return "biases"
    if parts[0] == "head" and parts[1] == "transform":
        return "head"
    if len(parts) == 5 and parts[2] == "attention" and parts[3] in ("query", "key", "value", "output"):
        return "attention output" if parts[3] == "output" else parts[3]
    if len(parts) == 5 and parts[2] == "ffn":
        return "FFN"
    raise ValueError(f"parameter_kind: {name!r} is not a TinyBERT parameter name")


def group_by_kind(names: Iterable[str]) -> dict[str, list[str]]:
    """Names grouped by ``parameter_kind``, kinds in ``PARAMETER_KINDS`` order (kinds with no name left out)."""
    groups: dict[str, list[str]] = {kind: [] for kind in PARAMETER_KINDS}
    for name in names:
        groups[parameter_kind(name)].append(name)
    return {kind: members for kind, members in groups.items() if members}
