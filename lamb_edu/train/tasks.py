"""A task is what ``fit`` trains on: its data in batches, the loss a step minimises, and how it is scored.

``fit`` knows nothing of digits or text: it asks the task for the batches of an epoch, back-propagates
``task.objective(model, x, y)``, and records what ``task.evaluate(model)`` returns after each epoch
(``test_loss`` and ``test_accuracy``, plus what the task adds). Two tasks:

- ``Classification``: MNIST digits, cross-entropy, accuracy on the 10,000 test images;
- ``MaskedLM``: windows of tiny-Shakespeare characters, BERT's masking drawn afresh for every batch
  from ``(seed, epoch, batch)`` (so a resumed run masks exactly as an uninterrupted one), the masked-LM
  cross-entropy over masked positions only; scored on a fixed validation subset masked once with a
  fixed seed: masked-character accuracy, loss in nats (``test_loss``) and in bits per character.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from lamb_edu import backend
from lamb_edu.autograd import Tensor, no_grad
from lamb_edu.data import MNIST, CharText, batches, epoch_permutation, mask_windows, prepare
from lamb_edu.nn import Module, masked_lm_cross_entropy
from lamb_edu.text_data import IGNORE
from lamb_edu.train.step import classification_objective
from lamb_edu.train.workers import SingleProcess

np = backend.np

__all__ = ["Task", "Classification", "MaskedLM", "as_task", "VALIDATION_SEED"]

VALIDATION_SEED = 20190401  # the validation subset is masked once, the same way for every run
_BATCH_STREAM = 1  # keeps the training masks' random stream apart from any other drawn from the run's seed


class Task:
    """What ``fit`` needs of a task; subclasses fill in each method."""

    name = "task"

    @property
    def size(self) -> int:
        """Training examples available."""
        raise NotImplementedError

    def batches(self, count: int, batch_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        """``(x, y)`` batches of one epoch over the first ``count`` training examples, from batch ``start``."""
        raise NotImplementedError

    def objective(self, model: Module, x: Any, y: Any) -> Tensor:
        """The mean loss of ``model`` on a batch ``(x, y)``, a scalar graph node."""
        raise NotImplementedError

    def evaluate(self, model: Module, workers: Any = None) -> dict[str, float]:
        """``test_loss`` and ``test_accuracy`` (a fraction) of ``model``, plus the task's own measures.

        ``workers`` (train.workers) may share the scoring between data-parallel ranks."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What summary.json records about the task."""
        return {"name": self.name}


class Classification(Task):
    """MNIST: 784 pixels to one of 10 digits, cross-entropy; scored on the test set."""

    name = "mnist-classification"

    def __init__(self, data: MNIST) -> None:
        self.data = data
        self._prepared: tuple[int, Any, Any] | None = None
        self._test: tuple[Any, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.data.train_images)

    def batches(self, count: int, batch_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        if self._prepared is None or self._prepared[0] != count:  # prepared once per run, on the device
            self._prepared = (count, *prepare(self.data.train_images[:count], self.data.train_labels[:count]))
        return batches(self._prepared[1], self._prepared[2], batch_size, seed, epoch, start)

    def objective(self, model: Module, x: Any, y: Any) -> Tensor:
        return classification_objective(model, x, y)

    def evaluate(self, model: Module, workers: Any = None) -> dict[str, float]:
        if self._test is None:
            self._test = prepare(self.data.test_images, self.data.test_labels)
        # data parallel: each rank scores its share of the test set and the counts are summed
        test_loss, test_accuracy = (workers or SingleProcess()).evaluate(model, *self._test)
        return {"test_loss": test_loss, "test_accuracy": test_accuracy}


class MaskedLM(Task):
    """Tiny Shakespeare as a masked language model: windows of ``context`` characters, BERT's masking.

    ``validation_windows`` windows, evenly spaced through the validation split, are masked once with
    ``VALIDATION_SEED`` and scored after every epoch (all of them when there are fewer).
    """

    name = "masked-lm"

    def __init__(self, text: CharText, context: int = 64, validation_windows: int = 512) -> None:
        if validation_windows < 1:
            raise ValueError(f"validation_windows must be at least 1, got {validation_windows}")
        self.text, self.context = text, context
        self.train_windows = text.windows("train", context)
        validation = text.windows("validation", context)
        pick = np.linspace(0, len(validation) - 1, min(validation_windows, len(validation))).round().astype(np.int64)
        self.validation = mask_windows(validation[pick], np.random.default_rng(VALIDATION_SEED),
                                       len(text.vocabulary), text.mask_id)

    @property
    def size(self) -> int:
        return len(self.train_windows)

    def mask(self, windows: Any, seed: int, epoch: int, batch: int) -> tuple[Any, Any]:
        """Batch ``batch`` of epoch ``epoch`` masked from its own generator: ``(inputs, targets)`` on the device."""
        rng = np.random.default_rng([seed, epoch, batch, _BATCH_STREAM])
        inputs, targets = mask_windows(windows, rng, len(self.text.vocabulary), self.text.mask_id)
        return backend.asarray(inputs), backend.asarray(targets)

    def batches(self, count: int, batch_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = epoch_permutation(count, seed, epoch)
        for batch in range(start, math.ceil(count / batch_size)):
            windows = self.train_windows[order[batch * batch_size : (batch + 1) * batch_size]]
            yield self.mask(windows, seed, epoch, batch)

    def objective(self, model: Module, x: Any, y: Any) -> Tensor:
        return masked_lm_cross_entropy(model(x), y)  # the model takes the integer ids themselves

    def evaluate(self, model: Module, workers: Any = None, batch_size: int = 256) -> dict[str, float]:
        """Mean loss over the masked validation positions (nats and bits per character) and their accuracy.

        Every rank scores the whole validation subset (it is small); ``workers`` is not used."""
        inputs, targets = self.validation
        total, correct, counted = 0.0, 0, 0
        with no_grad(), np.errstate(over="ignore", invalid="ignore"):
            for begin in range(0, len(inputs), batch_size):
                x = backend.asarray(inputs[begin : begin + batch_size])
                y = backend.asarray(targets[begin : begin + batch_size])
                logits = model(x)
                n = int((y != IGNORE).sum())
                total += masked_lm_cross_entropy(logits, y).item() * n
                correct += int(((logits.data.argmax(axis=-1) == y) & (y != IGNORE)).sum())
                counted += n
        loss = total / counted
        return {"test_loss": loss, "test_accuracy": correct / counted, "bits_per_char": loss / math.log(2)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "context": self.context, "vocabulary": self.text.vocabulary,
                "vocab_size": self.text.vocab_size,
                "train_windows": self.size, "validation_windows": len(self.validation[0]),
                "validation_masked": int((self.validation[1] != IGNORE).sum())}


def as_task(data: Any) -> Task:
    """``data`` itself when it is a ``Task``; an ``MNIST`` becomes its ``Classification`` task."""
    if isinstance(data, Task):
        return data
    if isinstance(data, MNIST):
        return Classification(data)
    raise TypeError(f"fit trains on a Task or an MNIST, got {type(data).__name__}")
