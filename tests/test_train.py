"""The training loop: learning real MNIST, the recorded statistics, divergence, checkpoints and resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import backend, nn, optim
from lamb_edu.data import MNIST, load_mnist, prepare
from lamb_edu.train import History, evaluate, fit

NAMES = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]


def real_mnist() -> MNIST:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the directory with the four IDX files "
                    "(CI uses ../shared/data/mnist)")
    return load_mnist(directory, download=False)


def synthetic_mnist(train: int = 300, test: int = 100, seed: int = 0) -> MNIST:
    """Random 28x28 'digits' whose label is decided by the brightness of one of ten image bands."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 120, size=(n, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 2 * label + 4 : 2 * label + 6, :] += 120
        return images, labels.astype(np.int64)

    return MNIST(*make(train), *make(test))


def cosine(optimizer, total: int):
    """lr·½(1 + cos(π·s/total)) after s steps."""
    return optim.schedules.LRScheduler(optimizer, optim.schedules.WarmupCosine(0, total))


def weights(model) -> dict[str, np.ndarray]:
    return {name: backend.to_numpy(p.data).copy() for name, p in model.named_parameters()}


def reference_loss_and_accuracy(model, images, labels):
    """Cross-entropy and accuracy in float64 NumPy, straight from the weights (independent of autograd)."""
    x = (images.reshape(len(images), -1) / 255.0 - 0.1307) / 0.3081
    layers = [(backend.to_numpy(layer.weight.data).astype(np.float64), backend.to_numpy(layer.bias.data).astype(np.float64))
              for layer in model.layers if isinstance(layer, nn.Linear)]
    for index, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if index < len(layers) - 1:
            x = np.maximum(x, 0)
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean(), (x.argmax(axis=1) == labels).mean()


@pytest.mark.mnist
def test_mlp_learns_real_mnist_from_2000_examples():
    data = real_mnist()
    model = nn.MLP([784, 64, 10], seed=0)
    optimizer = optim.LAMB(model.named_parameters(), lr=0.03)
    epochs, batch = 10, 128  # 160 steps with a cosine decay: about 91 % for seeds 0, 1, 2
    steps_per_epoch = math.ceil(2000 / batch)
    history = fit(model, optimizer, data, epochs, batch, train_size=2000, seed=0, progress=False,
                  scheduler=cosine(optimizer, epochs * steps_per_epoch))
    assert history.diverged is None
    assert history.steps == epochs * steps_per_epoch and len(history.epochs) == epochs
    test_loss, test_accuracy = reference_loss_and_accuracy(model, data.test_images, data.test_labels)
    assert test_accuracy > 0.90
    assert history.epochs[-1]["test_accuracy"] == pytest.approx(test_accuracy, abs=1e-4)
    assert history.epochs[-1]["test_loss"] == pytest.approx(test_loss, rel=1e-4)
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"] < math.log(10)
    assert all(record["seconds"] > 0 for record in history.epochs)


def test_evaluate_matches_float64_reference():
    data = synthetic_mnist(test=250)
    model = nn.MLP([784, 32, 10], seed=3)
    x, y = prepare(data.test_images, data.test_labels)
    loss, accuracy = evaluate(model, x, y, batch_size=100)  # 100, 100, 50: the uneven last chunk counts right
    expected_loss, expected_accuracy = reference_loss_and_accuracy(model, data.test_images, data.test_labels)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-12)


def test_trust_statistics_are_recorded_for_lamb():
    data = synthetic_mnist()
    model = nn.MLP([784, 16, 10], seed=0)
    initial = weights(model)
    optimizer = optim.LAMB(model.named_parameters(), lr=0.01)
    history = fit(model, optimizer, data, 2, 32, log_every=4, progress=False)
    steps = 2 * math.ceil(300 / 32)
    assert history.parameter_names == NAMES and history.steps == steps
    assert history.log_steps.tolist() == [1] + list(range(4, steps + 1, 4))
    assert history.records_trust
    for key in ("weight_norm", "update_norm", "trust_ratio"):
        assert np.asarray(getattr(history, key)).shape == (len(history.log_steps), len(NAMES))
    # the first row: norms of the initial weights, and LAMB's ratio ‖w‖/‖u‖ (all ‖w‖ < 10: no clamp)
    expected = [np.linalg.norm(initial[name].astype(np.float64)) for name in NAMES]
    np.testing.assert_allclose(history.weight_norm[0], expected, rtol=1e-5)
    ratio = np.asarray(history.weight_norm) / np.asarray(history.update_norm)
    np.testing.assert_allclose(history.trust_ratio, ratio, rtol=1e-5)
    assert history.log_lr.tolist() == [0.01] * len(history.log_steps)
    arrays = history.trust_arrays()
    np.testing.assert_array_equal(arrays["steps"], history.log_steps)
    np.testing.assert_allclose(arrays["layers.2.weight/trust_ratio"], np.asarray(history.trust_ratio)[:, 2])
    assert list(arrays["names"]) == NAMES


def test_trust_statistics_are_read_through_lookahead():
    data = synthetic_mnist()
    plain_model, wrapped_model = nn.MLP([784, 16, 10], seed=0), nn.MLP([784, 16, 10], seed=0)
    plain = fit(plain_model, optim.LAMB(plain_model.parameters(), lr=0.01), data, 1, 64, log_every=2, progress=False)
    wrapped = optim.Lookahead(optim.LAMB(wrapped_model.parameters(), lr=0.01), k=100)  # k beyond the run: no sync
    looked_through = fit(wrapped_model, wrapped, data, 1, 64, log_every=2, progress=False)
    assert looked_through.records_trust
    np.testing.assert_array_equal(looked_through.trust_ratio, plain.trust_ratio)


def test_weight_norms_are_recorded_for_optimizers_without_trust_ratio():
    data = synthetic_mnist()
    model = nn.MLP([784, 16, 10], seed=1)
    initial = weights(model)
    history = fit(model, optim.SGD(model.parameters(), lr=0.05), data, 1, 50, log_every=3, progress=False)
    assert not history.records_trust and history.update_norm.size == 0 and history.trust_ratio.size == 0
    assert history.log_steps.tolist() == [1, 3, 6]
    np.testing.assert_allclose(history.weight_norm[0], [np.linalg.norm(initial[n].astype(np.float64)) for n in NAMES],
                               rtol=1e-6)
    assert "layers.0.weight/weight_norm" in history.trust_arrays()
    assert "layers.0.weight/trust_ratio" not in history.trust_arrays()


def test_training_is_deterministic_given_the_seed():
    data = synthetic_mnist()

    def run(seed):
        model = nn.MLP([784, 16, 10], seed=0)
        return fit(model, optim.Adam(model.parameters(), lr=1e-3), data, 2, 64, seed=seed, progress=False), weights(model)

    (first, first_weights), (again, again_weights), (other, _) = run(5), run(5), run(6)
    np.testing.assert_array_equal(first.step_loss, again.step_loss)
    for name in NAMES:
        np.testing.assert_array_equal(first_weights[name], again_weights[name])
    assert not np.array_equal(first.step_loss[1:], other.step_loss[1:])  # another seed shuffles differently


def test_divergence_stops_cleanly_with_finite_weights():
    data = synthetic_mnist()
    model = nn.MLP([784, 16, 10], seed=0)
    # Adam moves every weight by about lr per step: after one step of 1e20 the logits overflow to inf
    history = fit(model, optim.Adam(model.parameters(), lr=1e20), data, 3, 32, progress=False)
    assert history.diverged is not None and history.diverged >= 2
    assert history.steps == history.diverged - 1  # the bad step was not taken
    assert all(math.isfinite(loss) for loss in history.step_loss)
    assert len(history.epochs) == 1 and history.epochs[0]["diverged"] == history.diverged
    assert all(np.isfinite(value).all() for value in weights(model).values())
    document = json.loads(json.dumps(history.to_dict(), allow_nan=False))  # strict JSON despite the blow-up
    assert document["diverged"] == history.diverged


def test_history_round_trips_through_json():
    data = synthetic_mnist()
    model = nn.MLP([784, 8, 10], seed=0)
    history = fit(model, optim.LAMB(model.parameters(), lr=0.01), data, 1, 100, log_every=2, progress=False)
    restored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert restored == history
    assert restored.final() == {key: history.epochs[-1][key] for key in ("train_loss", "test_loss", "test_accuracy")}


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("make_optimizer", [
    lambda params: optim.LAMB(params, lr=0.01, weight_decay=0.01),
    lambda params: optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
    lambda params: optim.Lookahead(optim.Adam(params, lr=0.003), k=3, alpha=0.5),
], ids=["lamb", "sgd-nesterov", "lookahead-adam"])
def test_resume_from_checkpoint_ends_bit_identical(tmp_path, make_optimizer):
    data = synthetic_mnist()
    epochs, batch = 3, 40  # 8 steps per epoch, the last one of 20 examples

    def new_run():
        model = nn.MLP([784, 16, 10], seed=0)
        optimizer = make_optimizer(model.named_parameters())
        return model, optimizer, cosine(optimizer, 24)

    model, optimizer, schedule = new_run()
    straight = fit(model, optimizer, data, epochs, batch, seed=2, log_every=3, scheduler=schedule, progress=False)
    expected = weights(model)

    def crash_at_step_12(event):
        if event["type"] == "step" and event["step"] >= 12:
            raise Interrupt
    model, optimizer, schedule = new_run()
    with pytest.raises(Interrupt):  # the checkpoint of step 10 (mid-epoch 2) survives the crash
        fit(model, optimizer, data, epochs, batch, seed=2, log_every=3, scheduler=schedule, progress=False,
            checkpoint_dir=tmp_path, checkpoint_every=5, callback=crash_at_step_12)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["position"]["step"] == 10
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]

    model, optimizer, schedule = new_run()
    resumed = fit(model, optimizer, data, epochs, batch, seed=2, log_every=3, scheduler=schedule, progress=False,
                  checkpoint_dir=tmp_path, checkpoint_every=5, resume=True)
    for name in NAMES:
        np.testing.assert_array_equal(weights(model)[name], expected[name])
    for key in ("step_loss", "log_steps", "weight_norm", "trust_ratio"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(straight, key))
    strip = [{k: v for k, v in record.items() if k != "seconds"} for record in straight.epochs]
    assert [{k: v for k, v in record.items() if k != "seconds"} for record in resumed.epochs] == strip

    # the finished run's checkpoint resumes to "nothing left to do"; other settings are refused
    model, optimizer, schedule = new_run()
    again = fit(model, optimizer, data, epochs, batch, seed=2, scheduler=schedule, progress=False,
                checkpoint_dir=tmp_path, resume=True)
    assert np.array_equal(again.step_loss, straight.step_loss) and weights(model)["layers.2.bias"].tolist() == expected["layers.2.bias"].tolist()
    with pytest.raises(ValueError, match="batch_size=40"):
        fit(model, optimizer, data, epochs, 41, seed=2, progress=False, checkpoint_dir=tmp_path, resume=True)


def test_bad_arguments_raise_value_error():
    data = synthetic_mnist()
    model = nn.MLP([784, 8, 10], seed=0)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="train_size"):
        fit(model, optimizer, data, 1, 10, train_size=301, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, optimizer, data, 1, 0, progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        fit(model, optimizer, data, 1, 10, resume=True, progress=False)
