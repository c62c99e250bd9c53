"""Layers and networks, shaped like ``torch.nn``.

- ``module.py``: ``Module``, the base (parameters found by attribute, dotted names, ``state_dict``);
- ``layers.py``: ``Linear``, ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Flatten``, ``Sequential``;
- ``networks.py``: the ``MLP`` and the article's ``CNN``;
- ``losses.py``: ``cross_entropy`` and ``masked_lm_cross_entropy``;
- ``embedding.py``, ``normalization.py``, ``attention.py``, ``transformer.py``: ``Embedding``, ``LayerNorm``,
  ``MultiHeadSelfAttention``, ``TransformerEncoderLayer``; ``init.py``: BERT's initialisation;
- ``tiny_bert.py``: ``TinyBERT`` and ``parameter_kind`` / ``group_by_kind`` (its tensors by kind);
- ``functional/``: the graph operations the layers call, each one node with a hand-written gradient.
"""

from lamb_edu.nn import functional
from lamb_edu.nn.attention import MultiHeadSelfAttention
from lamb_edu.nn.embedding import Embedding
from lamb_edu.nn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from lamb_edu.nn.losses import cross_entropy, masked_lm_cross_entropy
from lamb_edu.nn.module import Module
from lamb_edu.nn.networks import CNN, MLP
from lamb_edu.nn.normalization import LayerNorm
from lamb_edu.nn.tiny_bert import PARAMETER_KINDS, TinyBERT, group_by_kind, parameter_kind
from lamb_edu.nn.transformer import TransformerEncoderLayer

__all__ = ["Module", "Linear", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Sequential", "MLP", "CNN", "cross_entropy",
           "functional", "Embedding", "LayerNorm", "MultiHeadSelfAttention", "TransformerEncoderLayer", "TinyBERT",
           "masked_lm_cross_entropy", "PARAMETER_KINDS", "parameter_kind", "group_by_kind"]
