"""TinyBERT on the stand-in GPU of ``tests/refusing_backend.py``: every new operation runs on device arrays
(NumPy would raise on them), gives the NumPy backend's numbers, and a training step waits for the device
only for the two input checks, however many layers the model has."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from test_host_boundary import on_fake_gpu  # noqa: F401  (the fixture)

from lamb_edu import backend, nn, optim
from tests.refusing_backend import WAITS

pytestmark = pytest.mark.skipif(backend.is_gpu(), reason="replaces the backend with a stand-in GPU")

rng = np.random.default_rng(0)
IDS = rng.integers(0, 13, size=(3, 8))
TARGETS = np.where(rng.random((3, 8)) < 0.4, rng.integers(0, 13, size=(3, 8)), -100)


def train(n_layers: int, steps: int = 2):
    """``steps`` LAMB steps of a small TinyBERT; the losses, the final weights and the waits outside the optimizer."""
    model = nn.TinyBERT(13, 8, d_model=12, n_layers=n_layers, n_heads=3, d_ff=20, seed=0)
    optimizer = optim.LAMB(model.parameters(), lr=1e-2, weight_decay=0.01)
    losses, waits = [], []
    for _ in range(steps):
        WAITS.clear()
        optimizer.zero_grad()
        loss = nn.masked_lm_cross_entropy(model(IDS), TARGETS)
        loss.backward()
        waits.append([wait for wait in WAITS if not wait.startswith("optim/")])
        optimizer.step()
        losses.append(backend.to_numpy(loss.data))
    return losses, [backend.to_numpy(p.data) for p in model.parameters()], waits


@pytest.fixture(scope="module")
def numpy_run():
    """The same training on the NumPy backend (a module fixture: set up before the stand-in GPU is)."""
    return train(2)


def test_tiny_bert_on_the_device_gives_the_numpy_numbers_and_waits_only_for_its_inputs(numpy_run,
                                                                                        on_fake_gpu):  # noqa: F811
    assert backend.is_gpu()
    expected_losses, expected_weights, _ = numpy_run
    losses, weights, waits = train(2)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for actual, reference in zip(weights, expected_weights):
        np.testing.assert_allclose(actual, reference, rtol=1e-4, atol=1e-6)
    for step_waits in waits:  # the ids' range and the targets' range: one wait each, none per layer
        where = Counter(wait.rsplit(": ", 1)[0] for wait in step_waits)
        assert where == Counter({"nn/embedding.py:check_ids": 1, "nn/losses.py:masked_lm_cross_entropy": 1}), where
    _, _, deeper = train(4, steps=1)
    assert len(deeper[0]) == 2
