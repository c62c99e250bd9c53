"""Fill in the blanks: a trained masked-character model guesses each ``_`` of a line of text.

This is the masked-LM task played backwards: every ``_`` becomes the mask token, the model scores all
positions at once (as in training, where 15 % of a window is hidden together), and each blank gets
the characters the model finds most probable there (the mask token itself is never a guess).
"""

from __future__ import annotations

from typing import NamedTuple

from lamb_edu import backend
from lamb_edu.autograd import no_grad
from lamb_edu.nn import Module

np = backend.np

__all__ = ["Blank", "fill_blanks"]


class Blank(NamedTuple):
    """One ``_``: its position in the text and the model's best guesses, ``(character, probability)``, best first."""

    position: int
    guesses: list[tuple[str, float]]


def fill_blanks(model: Module, vocabulary: str, text: str, blank: str = "_", top: int = 3) -> tuple[str, list[Blank]]:
    """The text with each ``blank`` replaced by the model's guess, and every blank's ``top`` guesses.

    ``vocabulary`` is the model's characters (ids 0..n-1; id n is the mask token). Raises ValueError
    for a text without blanks, longer than the model's context, or with a character outside the
    vocabulary (named).
    """
    if blank in vocabulary:
        raise ValueError(f"the blank {blank!r} is a character of the vocabulary; choose another")
    unknown = sorted(set(text) - set(vocabulary) - {blank})
    if unknown:
        raise ValueError(f"characters {''.join(unknown)!r} are not in the model's {len(vocabulary)}-character "
                         f"vocabulary")
    context = getattr(model, "context", len(text))
    if not 1 <= len(text) <= context:
        raise ValueError(f"the text has {len(text)} characters; the model reads 1 to {context}")
    positions = [i for i, char in enumerate(text) if char == blank]
    if not positions:
        raise ValueError(f"the text has no {blank!r} to fill in")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    index = {char: i for i, char in enumerate(vocabulary)}
    ids = np.array([[index.get(char, len(vocabulary)) for char in text]], dtype=np.int64)
    with no_grad():
        logits = backend.to_numpy(model(backend.asarray(ids)).data)[0, :, : len(vocabulary)].astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    blanks = []
    for position in positions:
        best = np.argsort(-probabilities[position], kind="stable")[:top]
        blanks.append(Blank(position, [(vocabulary[i], float(probabilities[position, i])) for i in best]))
    filled = list(text)
    for entry in blanks:
        filled[entry.position] = entry.guesses[0][0]
    return "".join(filled), blanks
