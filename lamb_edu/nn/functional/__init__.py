"""The graph operations behind the layers (``torch.nn.functional``'s place), one node each with a hand-written
gradient: ``linear``, ``softmax_cross_entropy`` and ``flatten`` (dense.py), ``conv2d`` and ``max_pool2d`` (conv.py),
``embedding`` (embedding.py), ``layer_norm`` (normalization.py), ``gelu`` (activation.py),
``scaled_dot_product_attention`` and ``self_attention`` (attention.py), ``masked_softmax_cross_entropy``
(masked_lm.py).
"""

from lamb_edu.nn.functional.activation import gelu
from lamb_edu.nn.functional.attention import scaled_dot_product_attention, self_attention
from lamb_edu.nn.functional.conv import conv2d, max_pool2d
from lamb_edu.nn.functional.dense import flatten, linear, softmax_cross_entropy
from lamb_edu.nn.functional.embedding import embedding
from lamb_edu.nn.functional.masked_lm import IGNORE_INDEX, masked_softmax_cross_entropy
from lamb_edu.nn.functional.normalization import layer_norm

__all__ = ["linear", "softmax_cross_entropy", "conv2d", "max_pool2d", "flatten", "embedding", "layer_norm", "gelu",
           "scaled_dot_product_attention", "self_attention", "masked_softmax_cross_entropy", "IGNORE_INDEX"]
