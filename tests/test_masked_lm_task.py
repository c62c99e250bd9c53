"""The masked-LM task trained by the same ``fit``: batches, masking, the exact loss weights, scores, resume, fill."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lamb_edu import nn, optim
from lamb_edu.text_data import IGNORE, CharText
from lamb_edu.train import MaskedLM, TrainingStopped, accumulate_gradients, fit
from lamb_edu.train.fill import fill_blanks

LINES = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
         "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n")
TEXT = CharText(LINES * 30)


def tiny_model(task: MaskedLM, seed: int = 0) -> nn.TinyBERT:
    return nn.TinyBERT(task.text.vocab_size, task.context, d_model=16, n_layers=1, n_heads=2, d_ff=32, seed=seed)


def test_batches_are_a_function_of_seed_epoch_and_batch():
    task = MaskedLM(TEXT, context=16, validation_windows=8)
    first = list(task.batches(100, 32, seed=3, epoch=1))
    again = list(task.batches(100, 32, seed=3, epoch=1, start=2))
    assert [len(x) for x, _ in first] == [32, 32, 32, 4]
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(first[2:], again))
    other = list(task.batches(100, 32, seed=4, epoch=1))
    assert any((a[1] != b[1]).any() for a, b in zip(first, other))
    x, y = first[0]
    assert ((y != IGNORE).sum(axis=1) == 2).all()  # round(15 % of 16) positions per window
    # every window is a window of the training split, its unmasked positions unchanged
    windows = {tuple(row) for row in task.train_windows[:100].tolist()}
    chosen = y != IGNORE
    restored = np.where(chosen, y, x)
    assert all(tuple(row) in windows for row in restored.tolist())


def test_micro_batches_weight_the_loss_exactly():
    """Every window holds the same number of masked positions, so n_i/N weights give the full batch's gradient."""
    task = MaskedLM(TEXT, context=16, validation_windows=8)
    x, y = next(iter(task.batches(task.size, 12, seed=0, epoch=0)))
    grads = []
    for micro in (12, 5):
        model = tiny_model(task)
        loss = accumulate_gradients(model, x, y, micro, 12, task.objective)
        grads.append((loss, [p.grad.copy() for p in model.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for whole, parts in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(parts, whole, rtol=1e-4, atol=1e-6)


def test_evaluate_matches_a_numpy_reference():
    task = MaskedLM(TEXT, context=16, validation_windows=20)
    model = tiny_model(task, seed=1)
    scores = task.evaluate(model, batch_size=7)  # batches that do not divide the subset
    inputs, targets = task.validation
    logits = model(inputs).data.astype(np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    chosen = targets != IGNORE
    nll = -log_probs[chosen, targets[chosen]]
    assert scores["test_loss"] == pytest.approx(nll.mean(), rel=1e-5)
    assert scores["bits_per_char"] == pytest.approx(nll.mean() / math.log(2), rel=1e-5)
    assert scores["test_accuracy"] == pytest.approx((logits.argmax(-1)[chosen] == targets[chosen]).mean())
    assert abs(scores["test_loss"] - math.log(task.text.vocab_size)) < 0.1  # at initialisation: ln V


def test_fit_trains_the_masked_lm_and_resumes_bit_identically(tmp_path):
    task = MaskedLM(TEXT, context=16, validation_windows=16)

    def run(directory, stop=None, resume=False):
        model = tiny_model(task)
        opt = optim.AdamW(model.named_parameters(), lr=0.01)
        history = fit(model, opt, task, epochs=2, batch_size=16, seed=5, train_size=96, log_every=2, progress=False,
                      checkpoint_dir=directory, resume=resume, stop=stop)
        return model, history

    model, history = run(tmp_path / "whole")
    assert history.steps == 12 and history.epochs[-1]["test_loss"] < history.epochs[0]["train_loss"]
    assert set(history.epochs[-1]) >= {"test_loss", "test_accuracy", "bits_per_char", "train_loss"}
    calls = itertools.count()
    with pytest.raises(TrainingStopped):
        run(tmp_path / "parts", stop=lambda: next(calls) == 8)
    resumed, resumed_history = run(tmp_path / "parts", resume=True)
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert (p.data == q.data).all(), name
    assert resumed_history.epochs[-1]["test_loss"] == history.epochs[-1]["test_loss"]


def test_fill_blanks_guesses_each_blank_and_refuses_bad_text():
    task = MaskedLM(TEXT, context=32, validation_windows=8)
    model = tiny_model(task)
    filled, blanks = fill_blanks(model, TEXT.vocabulary, "Speak, sp_ak.", top=2)
    assert len(filled) == 13 and filled[:9] == "Speak, sp" and filled[10:] == "ak." and filled[9] in TEXT.vocabulary
    assert [b.position for b in blanks] == [9] and len(blanks[0].guesses) == 2
    assert blanks[0].guesses[0][1] >= blanks[0].guesses[1][1] and 0 < sum(p for _, p in blanks[0].guesses) <= 1
    for text, match in (("no speak", "no '_'"), ("Z_", "'Z'"), ("_" * 33, "1 to 32")):
        with pytest.raises(ValueError, match=match):
            fill_blanks(model, TEXT.vocabulary, text)
