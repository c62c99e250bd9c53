"""The graph operations behind the layers (``torch.nn.functional``'s place), one node each with a hand-written
gradient: ``linear``, ``softmax_cross_entropy`` and ``flatten`` (dense.py), ``conv2d`` and ``max_pool2d`` (conv.py).
"""

from lamb_edu.nn.functional.conv import conv2d, max_pool2d
from lamb_edu.nn.functional.dense import flatten, linear, softmax_cross_entropy

__all__ = ["linear", "softmax_cross_entropy", "conv2d", "max_pool2d", "flatten"]
