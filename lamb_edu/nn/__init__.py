"""Layers and networks, shaped like ``torch.nn``.

- ``module.py``: ``Module``, the base (parameters found by attribute, dotted names, ``state_dict``);
- ``layers.py``: ``Linear``, ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Flatten``, ``Sequential``;
- ``networks.py``: the ``MLP`` and the article's ``CNN``;
- ``losses.py``: ``cross_entropy``;
- ``functional/``: the graph operations the layers call, each one node with a hand-written gradient.
"""

from lamb_edu.nn import functional
from lamb_edu.nn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from lamb_edu.nn.losses import cross_entropy
from lamb_edu.nn.module import Module
from lamb_edu.nn.networks import CNN, MLP

__all__ = ["Module", "Linear", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Sequential", "MLP", "CNN", "cross_entropy",
           "functional"]
