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
from lamb_edu.train import (
    History,
    RunFileError,
    TrainingStopped,
    Verdict,
    accumulate_gradients,
    detect_divergence,
    evaluate,
    fit,
    micro_batches,
    train_step,
)

NAMES = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]


def real_mnist() -> MNIST:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the data root (or the folder) with the four IDX files "
                    "(CI uses ../shared/data)")
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
    layers = [(backend.to_numpy(layer.weight.data).astype(np.float64),
               backend.to_numpy(layer.bias.data).astype(np.float64))
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
    assert history.nonfinite_step is None
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
    for key in ("weight_norm", "ratio_denominator", "trust_ratio"):
        assert np.asarray(getattr(history, key)).shape == (len(history.log_steps), len(NAMES))
    # the first row: norms of the initial weights, and LAMB's ratio ‖w‖/‖u‖ (all ‖w‖ < 10: no clamp)
    expected = [np.linalg.norm(initial[name].astype(np.float64)) for name in NAMES]
    np.testing.assert_allclose(history.weight_norm[0], expected, rtol=1e-5)
    ratio = np.asarray(history.weight_norm) / np.asarray(history.ratio_denominator)
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
    assert not history.records_trust and history.ratio_denominator.size == 0 and history.trust_ratio.size == 0
    assert history.log_steps.tolist() == [1, 3, 6]
    np.testing.assert_allclose(history.weight_norm[0], [np.linalg.norm(initial[n].astype(np.float64)) for n in NAMES],
                               rtol=1e-6)
    assert "layers.0.weight/weight_norm" in history.trust_arrays()
    assert "layers.0.weight/trust_ratio" not in history.trust_arrays()


def test_training_is_deterministic_given_the_seed():
    data = synthetic_mnist()

    def run(seed):
        model = nn.MLP([784, 16, 10], seed=0)
        history = fit(model, optim.Adam(model.parameters(), lr=1e-3), data, 2, 64, seed=seed, progress=False)
        return history, weights(model)

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
    assert history.nonfinite_step is not None and history.nonfinite_step >= 2
    assert history.steps == history.nonfinite_step - 1  # the bad step was not taken
    assert all(math.isfinite(loss) for loss in history.step_loss)
    assert len(history.epochs) == 1 and history.epochs[0]["nonfinite_step"] == history.nonfinite_step
    assert all(np.isfinite(value).all() for value in weights(model).values())
    document = json.loads(json.dumps(history.to_dict(), allow_nan=False))  # strict JSON despite the blow-up
    assert document["nonfinite_step"] == history.nonfinite_step


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
    """The one bit-for-bit resume test: a crash, then a stop between steps, then the rest of the run."""
    data = synthetic_mnist()
    epochs, batch, options = 3, 40, {"seed": 2, "log_every": 3, "accumulate": 2, "progress": False}  # 8 steps an epoch

    def new_run():
        model = nn.MLP([784, 16, 10], seed=0)
        optimizer = make_optimizer(model.named_parameters())
        return model, optimizer, cosine(optimizer, 24)

    model, optimizer, schedule = new_run()
    straight = fit(model, optimizer, data, epochs, batch, scheduler=schedule, **options)
    expected = weights(model)

    def crash_at_step_12(event):
        if event["type"] == "step" and event["step"] >= 12:
            raise Interrupt
    model, optimizer, schedule = new_run()
    with pytest.raises(Interrupt):  # the checkpoint of step 10 (mid-epoch 2) survives the crash
        fit(model, optimizer, data, epochs, batch, scheduler=schedule, checkpoint_dir=tmp_path, checkpoint_every=5,
            callback=crash_at_step_12, **options)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["position"]["step"] == 10  # the readable copy
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]

    model, optimizer, schedule = new_run()
    calls = iter(range(1000))
    with pytest.raises(TrainingStopped) as caught:  # stop() is asked before each step: True before step 14
        fit(model, optimizer, data, epochs, batch, scheduler=schedule, checkpoint_dir=tmp_path, checkpoint_every=5,
            resume=True, stop=lambda: next(calls) == 3, **options)
    assert caught.value.history.steps == 13 and caught.value.checkpointed

    model, optimizer, schedule = new_run()
    resumed = fit(model, optimizer, data, epochs, batch, scheduler=schedule, checkpoint_dir=tmp_path,
                  checkpoint_every=5, resume=True, **options)
    for name in NAMES:
        np.testing.assert_array_equal(weights(model)[name], expected[name])
    for key in ("step_loss", "log_steps", "weight_norm", "trust_ratio"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(straight, key))
    strip = [{k: v for k, v in record.items() if k != "seconds"} for record in straight.epochs]
    assert [{k: v for k, v in record.items() if k != "seconds"} for record in resumed.epochs] == strip

    # the finished run's checkpoint resumes to "nothing left to do"; other settings are refused
    model, optimizer, schedule = new_run()
    again = fit(model, optimizer, data, epochs, batch, scheduler=schedule, checkpoint_dir=tmp_path, resume=True,
                **options)
    assert np.array_equal(again.step_loss, straight.step_loss)
    assert weights(model)["layers.2.bias"].tolist() == expected["layers.2.bias"].tolist()
    for other, named in (({"batch_size": 41}, "batch_size=40"), ({"accumulate": 3}, "accumulate=2")):
        arguments = {"batch_size": batch, **options, **other}
        with pytest.raises(ValueError, match=named):
            fit(model, optimizer, data, epochs, arguments.pop("batch_size"), checkpoint_dir=tmp_path, resume=True,
                scheduler=schedule, **arguments)


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


# ----------------------------------------------------------------------------- gradient accumulation
def _one_step(make_optimizer, x, y, micro_batch_size):
    model = nn.MLP([784, 16, 10], seed=4)
    optimizer = make_optimizer(model.named_parameters())
    loss = train_step(model, optimizer, x, y, micro_batch_size=micro_batch_size)
    return loss, weights(model)


@pytest.mark.parametrize("make_optimizer", [
    lambda params: optim.LAMB(params, lr=0.01, weight_decay=0.01),
    lambda params: optim.SGD(params, lr=0.5, momentum=0.9),
], ids=["lamb", "sgd"])
@pytest.mark.parametrize("micro_batch_size", [5, 3], ids=["4x5", "3+3+3+3+3+3+2"])
def test_a_step_over_micro_batches_equals_the_step_over_the_whole_batch(make_optimizer, micro_batch_size):
    data = synthetic_mnist(train=20)
    x, y = prepare(data.train_images, data.train_labels)
    whole_loss, whole = _one_step(make_optimizer, x, y, None)
    loss, accumulated = _one_step(make_optimizer, x, y, micro_batch_size)
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    for name in NAMES:
        np.testing.assert_allclose(accumulated[name], whole[name], rtol=1e-5, atol=1e-7)


def test_micro_batches_are_weighted_by_their_share_of_the_examples():
    """With a last micro-batch of 2 of 20 examples, a plain mean of the micro-batch gradients is wrong."""
    data = synthetic_mnist(train=20)
    x, y = prepare(data.train_images, data.train_labels)
    model = nn.MLP([784, 16, 10], seed=4)
    accumulate_gradients(model, x, y, 20, 20)
    whole = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
    accumulate_gradients(model, x, y, 6, 20)  # 6 + 6 + 6 + 2
    weighted = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
    plain_mean = [np.zeros_like(g) for g in whole]
    for part in micro_batches(20, 6):
        accumulate_gradients(model, x[part], y[part], 6, part.stop - part.start)
        for total, p in zip(plain_mean, model.parameters()):
            total += backend.to_numpy(p.grad) / 4
    for exact, mine, naive in zip(whole, weighted, plain_mean):
        np.testing.assert_allclose(mine, exact, rtol=1e-5, atol=1e-7)
    assert not np.allclose(plain_mean[0], whole[0], rtol=1e-3, atol=1e-6)
    assert [s.stop - s.start for s in micro_batches(10, 3)] == [3, 3, 3, 1]


def test_fit_with_accumulation_trains_like_fit_without():
    data = synthetic_mnist()

    def run(accumulate):
        model = nn.MLP([784, 16, 10], seed=0)
        history = fit(model, optim.LAMB(model.parameters(), lr=0.01), data, 1, 64, accumulate=accumulate,
                      progress=False)
        return history, weights(model)

    (plain, plain_weights), (accumulated, accumulated_weights) = run(1), run(3)  # micro-batches of 22, 22, 20
    assert accumulated.steps == plain.steps == 5
    np.testing.assert_allclose(accumulated.step_loss, plain.step_loss, rtol=1e-5)
    for name in NAMES:
        np.testing.assert_allclose(accumulated_weights[name], plain_weights[name], rtol=1e-4, atol=1e-6)


def test_shards_of_a_global_batch_add_up_to_its_gradient():
    """The data-parallel seam: each worker's share, summed (the all-reduce), is the whole batch's gradient."""
    data = synthetic_mnist(train=30)
    x, y = prepare(data.train_images, data.train_labels)
    model = nn.MLP([784, 8, 10], seed=1)
    whole_loss = accumulate_gradients(model, x, y, 30, 30)
    whole = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
    summed, loss = [np.zeros_like(g) for g in whole], 0.0
    for shard in (slice(0, 11), slice(11, 30)):  # two uneven "ranks"
        loss += accumulate_gradients(model, x[shard], y[shard], 4, 30)
        for total, p in zip(summed, model.parameters()):
            total += backend.to_numpy(p.grad)
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    for exact, reduced in zip(whole, summed):
        np.testing.assert_allclose(reduced, exact, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs, named", [
    ({"accumulate": 0}, "accumulate"),
    ({"accumulate": 11}, "accumulate"),
    ({"train_size": 5}, "batch_size 10 is larger than the 5"),
])
def test_bad_accumulation_or_batch_raises_value_error(kwargs, named):
    data = synthetic_mnist()
    model = nn.MLP([784, 8, 10], seed=0)
    with pytest.raises(ValueError, match=named):
        fit(model, optim.SGD(model.parameters(), lr=0.1), data, 1, 10, progress=False, **kwargs)


# ----------------------------------------------------------------------------- divergence
def test_weights_made_infinite_by_the_last_step_are_divergence():
    """lr 1e308: the one step of this run makes the weights ±inf with a finite loss; it is not "no divergence"."""
    data = synthetic_mnist()
    model = nn.MLP([784, 8, 10], seed=0)
    history = fit(model, optim.SGD(model.parameters(), lr=1e308), data, 1, 300, progress=False)
    assert history.steps == 1 and history.nonfinite_step == 1
    assert history.epochs[0]["nonfinite_step"] == 1
    assert detect_divergence(history.step_loss, stopped_at=history.nonfinite_step).outcome == "diverged"


def test_a_short_run_that_learned_is_not_called_did_not_learn():
    """30 steps from chance level to 0.45: a 20-step mean still holds the start (1.06); a fifth of the run does not."""
    losses = np.linspace(2.3, 0.45, 30)
    assert detect_divergence(losses, window=20).outcome == "did not learn"  # the old fixed window
    verdict = detect_divergence(losses)
    assert verdict.outcome == "learned" and verdict.lowest_loss < 0.7
    assert detect_divergence(np.full(30, 2.3)).outcome == "did not learn"
    long_run = np.concatenate([np.linspace(2.3, 0.3, 200), np.full(100, 2.3)])
    assert detect_divergence(long_run).outcome == "diverged"  # 20 steps, as before, from 100 steps on
    old = {"status": "learned", "step": None, "reasons": [], "lowest_loss": 0.2}  # a verdict before 0.3
    assert Verdict.from_dict(old).outcome == "learned"


def test_divergence_lives_in_the_training_layer():
    from lamb_edu import experiments, train

    assert experiments.detect_divergence is train.detect_divergence and experiments.Divergence is train.Divergence
    assert train.smoothed_loss([1.0, 3.0, 5.0], 2).tolist() == [1.0, 2.0, 4.0]


def test_history_holds_read_only_arrays():
    data = synthetic_mnist()
    model = nn.MLP([784, 8, 10], seed=0)
    history = fit(model, optim.LAMB(model.parameters(), lr=0.01), data, 1, 100, log_every=2, progress=False)
    assert history.step_loss.dtype == np.float64 and history.log_steps.dtype == np.int64
    assert history.trust_ratio.shape == (len(history.log_steps), len(NAMES))
    with pytest.raises(ValueError):
        history.step_loss[0] = 0.0
    np.testing.assert_array_equal(history.epoch_values("test_accuracy"), [history.epochs[0]["test_accuracy"]])
    old = {**history.to_dict(), "diverged": False}  # summary files before 0.2 said false
    assert History.from_dict(old).diverged is None


# ----------------------------------------------------------------------------- checkpoints, checked first
def edit_checkpoint(directory, document=None, arrays=None):
    """Rewrite the checkpoint in ``directory`` with ``document(doc)`` and ``arrays(arrays)`` applied (edits in "
      "place)."""
    path = Path(directory) / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    doc = json.loads(members["checkpoint"].tobytes().decode())
    if document is not None:
        document(doc)
    if arrays is not None:
        arrays(members)
    members["checkpoint"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    np.savez(path, **members)


def _checkpointed_lamb_run(directory):
    data = synthetic_mnist()
    model = nn.MLP([784, 16, 10], seed=0)
    fit(model, optim.LAMB(model.named_parameters(), lr=0.01), data, 1, 40, progress=False, checkpoint_dir=directory)
    return data


@pytest.mark.parametrize("make_optimizer, saved_as", [
    (lambda params: optim.Adam(params, lr=0.01), "Adam"),
    (lambda params: optim.AdamW(params, lr=0.01), "AdamW"),
    (lambda params: optim.SGD(params, lr=0.01), "SGD"),
    (lambda params: optim.Lookahead(optim.LAMB(params, lr=0.01)), r"Lookahead\(LAMB\)"),
])
def test_resuming_into_another_optimizer_is_refused_before_anything_loads(tmp_path, make_optimizer, saved_as):
    data = _checkpointed_lamb_run(tmp_path)
    model = nn.MLP([784, 16, 10], seed=7)
    before = weights(model)
    optimizer = make_optimizer(model.named_parameters())
    with pytest.raises(ValueError, match=f"LAMB optimizer, this run uses {saved_as}"):
        fit(model, optimizer, data, 2, 40, progress=False, checkpoint_dir=tmp_path, resume=True)
    for name in NAMES:
        np.testing.assert_array_equal(weights(model)[name], before[name])


def test_resuming_into_another_architecture_names_both(tmp_path):
    data = _checkpointed_lamb_run(tmp_path)
    model = nn.MLP([784, 8, 10], seed=0)
    with pytest.raises(ValueError, match=r"layers.0.weight \(16, 784\).*layers.0.weight \(8, 784\)"):
        fit(model, optim.LAMB(model.parameters(), lr=0.01), data, 2, 40, progress=False, checkpoint_dir=tmp_path,
            resume=True)


@pytest.mark.parametrize("edit, problem", [
    (lambda doc: doc["position"].update(epoch="1"), "position.epoch must be an integer"),
    (lambda doc: doc["position"].pop("batch"), r"lacks \['batch'\]"),
    (lambda doc: doc["position"].update(epoch=-1), "position.epoch must be an integer >= 0"),
    (lambda doc: doc["position"].update(batch=8, step=16, epoch_examples=320), "past the end of an epoch"),
    (lambda doc: doc["position"].update(step=9), "does not match"),
    (lambda doc: doc.pop("history"), "lacks"),
    (lambda doc: doc["history"].update(step_loss=[1.0]), "step losses"),
    (lambda doc: doc.update(scheduler={"base_lrs": "x"}), "scheduler"),
    (lambda doc: doc["history"]["epochs"][0].pop("epoch"), "epoch record 1 must be an object with 'epoch' 1"),
    (lambda doc: doc["history"]["log_lr"].pop(), "log_lr has"),
    (lambda doc: doc["history"]["weight_norm"][0].pop(), "weight_norm must have one row"),
    (lambda doc: doc.update(scheduler={"base_lrs": [0.01], "last_step": 3}),
     "the scheduler stands at step 3, the position at step 8"),
])
def test_a_damaged_checkpoint_document_is_refused_naming_it(tmp_path, edit, problem):
    data = _checkpointed_lamb_run(tmp_path)
    path = tmp_path / "checkpoint.npz"
    edit_checkpoint(tmp_path, document=edit)
    model = nn.MLP([784, 16, 10], seed=5)
    before = weights(model)
    optimizer = optim.LAMB(model.named_parameters(), lr=0.01)
    scheduler = cosine(optimizer, 10) if "scheduler" in problem and "stands" not in problem else None
    if "stands" in problem:  # a scheduler whose position disagrees with the step would change the result
        scheduler = optim.schedules.LRScheduler(optimizer, optim.schedules.WarmupCosine(0, 10))
        edit_checkpoint(tmp_path, document=lambda doc: doc.update(scheduler={"base_lrs": [0.01], "last_step": 3}))
    with pytest.raises(RunFileError, match=problem) as caught:
        fit(model, optimizer, data, 2, 40, progress=False, checkpoint_dir=tmp_path, resume=True, scheduler=scheduler)
    assert str(path) in str(caught.value)
    assert all(np.array_equal(weights(model)[name], before[name]) for name in NAMES)


def test_a_checkpoint_of_the_older_two_file_format_still_resumes(tmp_path):
    """Before 0.3: the arrays and a 'step' in checkpoint.npz, the document in checkpoint.json."""
    data = _checkpointed_lamb_run(tmp_path)
    path = tmp_path / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    document = json.loads(members.pop("checkpoint").tobytes())
    (tmp_path / "checkpoint.json").write_text(json.dumps(document))
    for step, works in ((document["position"]["step"], True), (3, False)):
        np.savez(path, **members, step=np.asarray(step, dtype=np.int64))
        model = nn.MLP([784, 16, 10], seed=0)
        arguments = (model, optim.LAMB(model.named_parameters(), lr=0.01), data, 1, 40)
        if works:
            assert fit(*arguments, progress=False, checkpoint_dir=tmp_path, resume=True).steps == 8
        else:  # the pair is from two steps
            with pytest.raises(RunFileError, match="different steps"):
                fit(*arguments, progress=False, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("damage", ["truncate", "garble", "nan", "nan-in-v", "inf-in-m"])
def test_a_truncated_or_corrupt_npz_is_one_clear_error(tmp_path, damage):
    data = _checkpointed_lamb_run(tmp_path)
    path = tmp_path / "checkpoint.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garble":
        raw = bytearray(path.read_bytes())
        raw[200:260] = b"\x00" * 60
        path.write_bytes(bytes(raw))
    else:
        key, value = {"nan": ("model/layers.0.bias", np.nan), "nan-in-v": ("optimizer/state/0/v", np.nan),
                      "inf-in-m": ("optimizer/state/3/m", np.inf)}[damage]
        edit_checkpoint(tmp_path, arrays=lambda arrays: arrays[key].reshape(-1).__setitem__(0, value))
    model = nn.MLP([784, 16, 10], seed=0)
    before = weights(model)
    with pytest.raises(RunFileError, match="checkpoint.npz") as caught:
        fit(model, optim.LAMB(model.named_parameters(), lr=0.01), data, 2, 40, progress=False,
            checkpoint_dir=tmp_path, resume=True)
    assert str(path) in str(caught.value)
    if damage != "truncate" and damage != "garble":  # a damaged file, not a run that diverged
        assert "holds NaN or inf" in str(caught.value)
    assert all(np.array_equal(weights(model)[name], before[name]) for name in NAMES)


def test_a_history_written_with_update_norm_still_reads():
    """Run files from before the rename say ``update_norm`` for the trust ratio's denominator."""
    history = History(["w"], log_steps=[1], log_lr=[0.1], weight_norm=[[1.0]], ratio_denominator=[[2.0]],
                      trust_ratio=[[0.5]])
    old = history.to_dict()
    old["update_norm"] = old.pop("ratio_denominator")
    assert History.from_dict(old) == history
