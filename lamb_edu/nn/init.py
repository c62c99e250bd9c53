"""BERT's initialisation: weights and embeddings normal(0, 0.02), LayerNorm γ = 1 and β = 0, biases 0.

Values are drawn on the host from a ``numpy.random.Generator`` (``backend.generator``) and then moved
to the active backend, as every layer does, so a seed gives the same model on NumPy and on CuPy.
"""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.layers import Linear

__all__ = ["BERT_INIT_STD", "normal_parameter", "constant_parameter", "bert_linear"]

BERT_INIT_STD = 0.02  # BERT's initializer_range


def normal_parameter(rng: Any, std: float, shape: tuple[int, ...], dtype: Any = None) -> Tensor:
    """A parameter drawn from normal(0, std²) on the host."""
    values = rng.normal(0.0, std, size=shape)
    return Tensor(backend.asarray(values, dtype=dtype or backend.default_dtype()), requires_grad=True)


def constant_parameter(value: float, shape: tuple[int, ...], dtype: Any = None) -> Tensor:
    """A parameter filled with ``value`` (LayerNorm's γ = 1, β = 0 and BERT's zero biases)."""
    return Tensor(backend.xp.full(shape, value, dtype=dtype or backend.default_dtype()), requires_grad=True)


def bert_linear(in_features: int, out_features: int, rng: Any, dtype: Any = None,
                std: float = BERT_INIT_STD) -> Linear:
    """An ``nn.Linear`` initialised as BERT's: weight normal(0, std²) from ``rng``, bias 0.

    The layer is built as ``nn.Linear`` builds it (from a throwaway generator, so ``rng`` draws only
    BERT's weights) and its parameters are then replaced.
    """
    layer = Linear(in_features, out_features, rng=backend.generator(0), dtype=dtype)
    layer.weight = normal_parameter(rng, std, (out_features, in_features), dtype)
    layer.bias = constant_parameter(0.0, (out_features,), dtype)
    return layer
