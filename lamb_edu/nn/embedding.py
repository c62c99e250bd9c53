"""``Embedding``: a table of vectors looked up by integer id, shaped like ``torch.nn.Embedding``."""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.nn.functional import embedding
from lamb_edu.nn.init import BERT_INIT_STD, normal_parameter
from lamb_edu.nn.module import Module

__all__ = ["Embedding", "check_ids"]


def check_ids(ids: Any, num_embeddings: int, what: str = "ids") -> Any:
    """``ids`` as an integer array on the active backend, after checking every value is in [0, num_embeddings).

    A ``Tensor`` holding integers is unwrapped. Raises ValueError naming the bad thing (a float or
    boolean array, values outside the range); the range check is one wait on a GPU.
    """
    data = ids.data if isinstance(ids, Tensor) else ids
    data = backend.asarray(data)
    if data.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got an array of {data.dtype}")
    if data.size and bool(((data < 0) | (data >= num_embeddings)).any()):
        raise ValueError(f"{what} must lie in [0, {num_embeddings}), got values from {int(data.min())} "
                         f"to {int(data.max())}")
    return data


class Embedding(Module):
    """``weight[ids]``, with ``weight`` of shape (num_embeddings, embedding_dim).

    Initialised as BERT's embeddings: normal(0, 0.02²) (``torch.nn.Embedding`` uses normal(0, 1);
    pass ``std=1.0`` for that). ``forward(ids)`` takes integer ids of any shape and returns
    ids.shape + (embedding_dim,); ids outside [0, num_embeddings) raise ValueError.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, seed: int | None = None, dtype: Any = None,
                 rng: Any = None, std: float = BERT_INIT_STD) -> None:
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"Embedding needs positive sizes, got num_embeddings={num_embeddings}, "
                             f"embedding_dim={embedding_dim}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        rng = rng if rng is not None else backend.generator(seed)
        self.weight = normal_parameter(rng, std, (num_embeddings, embedding_dim), dtype)

    def forward(self, ids: Any) -> Tensor:
        return embedding(check_ids(ids, self.num_embeddings), self.weight)

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
