"""The two networks of the MNIST lessons: an ``MLP`` and the article's ``CNN``."""

from __future__ import annotations

from typing import Any, Sequence

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import flatten
from lamb_edu.nn.layers import Conv2d, Linear, MaxPool2d, ReLU, Sequential
from lamb_edu.nn.module import Module, check_size

__all__ = ["MLP", "CNN"]


class MLP(Sequential):
    """Linear/ReLU stacks for the given widths, e.g. ``MLP([784, 256, 256, 10])``.

    No activation follows the last layer: it outputs logits for ``cross_entropy``. All layers draw
    from one generator, seeded by ``seed`` (or the library-wide one), so a seed fixes the model.
    """

    def __init__(self, sizes: Sequence[int], seed: int | None = None, dtype: Any = None) -> None:
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least two positive sizes, got {sizes}")
        sizes = [check_size(f"MLP size {index}", size) for index, size in enumerate(sizes)]
        rng = backend.generator(seed)
        layers: list[Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(fan_in, fan_out, rng=rng, dtype=dtype))
            if index < len(sizes) - 2:
                layers.append(ReLU())
        super().__init__(*layers)
        self.sizes = sizes


class CNN(Module):
    """The article's MNIST network, the one its PyTorch code trained.

    conv1 1→20 (5×5), ReLU, max-pool 2, conv2 20→50 (5×5), ReLU, max-pool 2, flatten (50·4·4 = 800),
    fc1 800→500, ReLU, fc2 500→10 (logits). Parameters ``conv1.weight``, ``conv1.bias``,
    ``conv2.*``, ``fc1.*``, ``fc2.*``, initialised as PyTorch does, all from one generator seeded
    by ``seed``. It takes images as NCHW (batch, 1, 28, 28) or flat (batch, 784), as the training
    loop gives them.
    """

    def __init__(self, seed: int | None = None, dtype: Any = None) -> None:
        rng = backend.generator(seed)
        self.conv1 = Conv2d(1, 20, 5, rng=rng, dtype=dtype)
        self.conv2 = Conv2d(20, 50, 5, rng=rng, dtype=dtype)
        self.fc1 = Linear(800, 500, rng=rng, dtype=dtype)
        self.fc2 = Linear(500, 10, rng=rng, dtype=dtype)
        self.pool = MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(x.shape[0], 1, 28, 28)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNN expects images of shape (batch, 784) or (batch, 1, 28, 28), got {x.shape}")
        # max-pool then ReLU equals ReLU then max-pool (both keep the larger value), values and
        # gradients alike; this order does the ReLU on a quarter of the values.
        x = self.pool(self.conv1(x)).relu()
        x = self.pool(self.conv2(x)).relu()
        x = self.fc1(flatten(x)).relu()
        return self.fc2(x)

    def __repr__(self) -> str:
        layers = [self.conv1, "ReLU()", self.pool, self.conv2, "ReLU()", self.pool, "Flatten()", self.fc1, "ReLU()",
                  self.fc2]
        return "CNN(\n" + "\n".join(f"  {layer}" for layer in layers) + "\n)"
