"""Gradient buckets: the autograd hook they hang on, their plan, the overlap with backward, equality with
the unbucketed path (gradient accumulation included), ZeRO-1's traffic, and the honest cost-model fit."""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, nn, optim
from lamb_edu.distributed import (
    DataParallel,
    LocalWorld,
    ShardedOptimizer,
    fit_latency_bandwidth,
    plan_buckets,
    predict_data_parallel_step,
    ring_bytes_per_rank,
)


def batch(seed=0, count=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 6)).astype(np.float32), np.arange(count) % 3


# ---------------------------------------------------------------------------- the autograd hook
def test_post_accumulate_grad_hook_sees_each_final_gradient_once():
    model = nn.MLP([6, 5, 3], seed=0)
    seen = []
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda t, name=name: seen.append((name, t.grad.copy())))
    x, y = batch()
    nn.cross_entropy(model(Tensor(x)), y).backward()
    assert sorted(name for name, _ in seen) == sorted(dict(model.named_parameters()))
    parameters = dict(model.named_parameters())
    for name, grad in seen:  # what the hook saw is the final gradient of the pass
        np.testing.assert_array_equal(grad, parameters[name].grad)
    # the last layer is final before the first one (what lets its bucket leave early)
    order = [name for name, _ in seen]
    assert order.index("layers.2.weight") < order.index("layers.0.weight")


def test_hook_waits_for_every_use_of_a_leaf_and_can_be_removed():
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    seen = []
    remove = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.copy()))
    ((w * w) + w * 2.0).sum().backward()  # three uses: d/dw = 2w + 2 = 4
    assert len(seen) == 1 and seen[0].tolist() == [4.0, 4.0, 4.0]
    w.backward(np.ones(3, dtype=np.float32))  # backward on the leaf itself: its gradient adds up, hook once
    assert len(seen) == 2 and seen[1].tolist() == [5.0, 5.0, 5.0]
    remove()
    w.sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2.0).register_post_accumulate_grad_hook(lambda t: None)


def test_a_gradient_buffer_receives_the_gradient_without_a_copy():
    x, y = batch()
    reference = nn.MLP([6, 5, 3], seed=0)
    nn.cross_entropy(reference(Tensor(x)), y).backward()
    model = nn.MLP([6, 5, 3], seed=0)
    buffers = {name: np.full(p.shape, 7.0, dtype=np.float32) for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad_buffer = buffers[name]
    for passes in (1, 2):  # a second backward without zero_grad adds a new array to the first
        nn.cross_entropy(model(Tensor(x)), y).backward()
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            np.testing.assert_allclose(p.grad, passes * q.grad, rtol=1e-6, err_msg=name)
            assert (p.grad is buffers[name]) == (passes == 1), name  # the linear layers wrote into the buffer
    model.zero_grad()
    nn.cross_entropy(model(Tensor(x)), y).backward()
    assert all(p.grad is buffers[name] for name, p in model.named_parameters())  # the old values overwritten
    np.testing.assert_allclose(model.parameters()[0].grad, reference.parameters()[0].grad, rtol=1e-6)


def test_data_parallel_gradients_are_born_in_the_flat_buffer():
    model = nn.MLP([6, 5, 3], seed=0)
    parallel = DataParallel(model, LocalWorld(), bucket_mb=0.0001)
    x, y = batch()
    for _ in range(2):
        model.zero_grad()
        nn.cross_entropy(model(Tensor(x)), y).backward()
        for index, p in enumerate(model.parameters()):
            assert p.grad is p.grad_buffer and np.shares_memory(p.grad, parallel.flat.grad)
            assert parallel.flat.offsets[index] == (p.grad.__array_interface__["data"][0]
                                                    - parallel.flat.grad.__array_interface__["data"][0]) // 4
        parallel.all_reduce_gradients(1.0)
    parallel.buckets.remove_hooks()
    assert all(p.grad_buffer is None for p in model.parameters())


# ---------------------------------------------------------------------------- the plan
def test_buckets_fill_in_reverse_order_and_never_split_a_parameter():
    sizes = [30, 5, 15, 3]  # float32: 120, 20, 60, 12 bytes
    assert plan_buckets(sizes, 4, 80) == [[3, 2], [1], [0]]  # 12+60=72; +20 > 80 closes it; 20+120 > 80
    assert plan_buckets(sizes, 4, 200) == [[3, 2, 1], [0]]
    assert plan_buckets(sizes, 4, None) == [[3, 2, 1, 0]]
    assert plan_buckets(sizes, 4, 1) == [[3], [2], [1], [0]]
    with pytest.raises(ValueError, match="bucket_bytes"):
        plan_buckets(sizes, 4, 0)


class RecordingWorld(LocalWorld):
    """A world of one that writes down when each collective starts."""

    def __init__(self, log):
        self.log = log

    def start_allreduce_sum(self, buffer):
        self.log.append(("allreduce", buffer.size))
        return super().start_allreduce_sum(buffer)


def test_buckets_start_during_backward_before_the_first_layer_is_done():
    log = []
    model = nn.MLP([6, 5, 4, 3], seed=0)
    parallel = DataParallel(model, RecordingWorld(log), bucket_mb=20 * 4 / 2**20)  # 80 bytes: 4 buckets
    assert parallel.buckets.plan == [[5, 4, 3], [2], [1], [0]]  # 12 + 48 + 16 bytes, 80, 20, 120
    first_weight = model.parameters()[0]
    first_weight.register_post_accumulate_grad_hook(lambda t: log.append(("first layer final", None)))
    x, y = batch()
    loss = nn.cross_entropy(model(Tensor(x)), y)
    loss.backward()
    log.append(("backward returned", None))
    parallel.all_reduce_gradients(loss.item())
    events = [what for what, _ in log]
    # the buckets of layers 2 and 1 left during backward, before the first layer's gradient existed;
    # layers.0.bias (bucket 2) is final with layers.0.weight (one fused linear node) and leaves then,
    # still inside backward; the last bucket (the status, 2 numbers, in front of layers.0.weight)
    # leaves when all_reduce_gradients knows the loss
    assert events == ["allreduce", "allreduce", "first layer final", "allreduce", "backward returned", "allreduce"]
    # layers.1's weight and bias are final together too, weight first: bucket 1 completes before bucket 0
    assert [size for what, size in log if what == "allreduce"] == [5 * 4, 3 + 4 * 3 + 4, 5, 2 + 6 * 5]


# ---------------------------------------------------------------------------- equal to the unbucketed path
def run_steps(bucket_mb, passes, make, sharded=False, steps=3):
    model = nn.MLP([6, 5, 4, 3], seed=1)
    parallel = DataParallel(model, LocalWorld(), bucket_mb=bucket_mb, backward_passes=passes)
    optimizer = make(model.parameters())
    if sharded:
        optimizer = ShardedOptimizer(optimizer, parallel)
    losses = []
    for step in range(steps):
        x, y = batch(step)
        model.zero_grad()
        total = 0.0
        for part in np.array_split(np.arange(len(y)), passes):  # micro-batches, each weighted by its share
            loss = nn.cross_entropy(model(Tensor(x[part])), y[part])
            loss.backward(np.asarray(len(part) / len(y), dtype=np.float32))
            total += loss.item() * len(part) / len(y)
        losses.append(parallel.all_reduce_gradients(total))
        optimizer.step()
    return losses, parallel.flat.host_copy()


@pytest.mark.parametrize("make", [lambda p: optim.LAMB(p, lr=0.02, weight_decay=0.01),
                                  lambda p: optim.LARS(p, lr=0.5, weight_decay=1e-4),
                                  lambda p: optim.AdamW(p, lr=0.01)], ids=["lamb", "lars", "adamw"])
def test_bucketed_and_accumulated_steps_equal_the_unbucketed_path(make):
    reference_losses, reference = run_steps(None, 1, make)
    for bucket_mb, passes, sharded in [(20 * 4 / 2**20, 1, False), (20 * 4 / 2**20, 2, False), (None, 2, True),
                                       (20 * 4 / 2**20, 2, True)]:
        losses, weights = run_steps(bucket_mb, passes, make, sharded)
        np.testing.assert_allclose(losses, reference_losses, rtol=1e-6)
        np.testing.assert_allclose(weights, reference, rtol=1e-5, atol=1e-7, err_msg=f"{bucket_mb} {passes} {sharded}")


def test_more_backward_passes_than_declared_is_an_error_not_a_wrong_sum():
    model = nn.MLP([6, 5, 4, 3], seed=1)
    DataParallel(model, LocalWorld(), bucket_mb=20 * 4 / 2**20, backward_passes=1)
    x, y = batch()
    nn.cross_entropy(model(Tensor(x)), y).backward()
    with pytest.raises(RuntimeError, match="changed after its bucket was sent"):
        nn.cross_entropy(model(Tensor(x)), y).backward()  # a second micro-batch the buckets were not told of


# ---------------------------------------------------------------------------- traffic
def fake_world(size):
    world = LocalWorld()
    world.size = size  # rank 0's bookkeeping in a world of `size` (no collective is called)
    return world


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize("make, norms", [(optim.LAMB, 4), (optim.LARS, 4), (optim.AdamW, 0)],
                         ids=["lamb", "lars", "adamw"])
def test_zero1_moves_what_plain_data_parallelism_moves_plus_two_numbers_per_layer(size, make, norms):
    model = nn.MLP([6, 5, 3], seed=0)  # 4 parameters: 53 floats, padded to a multiple of the world size
    plain = DataParallel(model, fake_world(size)).traffic()
    kwargs = {"lr": 0.1} if make is optim.LARS else {}
    sharded = ShardedOptimizer(make(model.parameters(), **kwargs), DataParallel(model, fake_world(size))).traffic()
    padded = 4 * size * -(-53 // size)
    assert plain == {"gradient_allreduce": padded, "status_allreduce": 8}
    assert sharded == {"gradient_reduce_scatter": padded, "status_reduce_scatter": 8 * size,
                       "parameter_allgather": padded, "layer_norms_allreduce": 2 * 8 * norms}  # Σw², Σd² per layer
    gradient_and_weights = {key: value for key, value in sharded.items() if key.startswith(("gradient", "parameter"))}
    assert ring_bytes_per_rank(gradient_and_weights, size) == ring_bytes_per_rank({"gradient_allreduce": padded}, size)
    # the ring: an all-reduce sends 2(p-1)/p of its payload from each rank
    assert ring_bytes_per_rank(plain, size) == pytest.approx(2 * (size - 1) / size * (padded + 8))


# ---------------------------------------------------------------------------- the cost model
def test_fit_weighs_small_messages_as_much_as_large_ones():
    sizes = np.array([4e3, 4e4, 4e5, 4e6])
    seconds = 80e-6 + sizes / 2e9
    seconds[-1] *= 1.2  # a slow large message: an ordinary least-squares intercept would swallow it
    latency, bandwidth = fit_latency_bandwidth(sizes, seconds)
    assert latency == pytest.approx(80e-6, rel=0.1)  # close to the 4 KiB time, not several times it
    straight, _ = np.polyfit(sizes, seconds, 1)[::-1]
    assert abs(straight - 80e-6) > 3 * abs(latency - 80e-6)
    with pytest.raises(ValueError, match="positive"):
        fit_latency_bandwidth([1e3, 1e4], [0.0, 1.0])


def test_predicted_step_hides_communication_behind_backward():
    # 1M parameters on 4 workers, batch 64 at 1 ms an example: compute 16 ms, all-reduce 6.06 ms;
    # with 2/3 of the compute overlapping (10.67 ms) nothing is exposed, with 1/4 (4 ms) 2.06 ms is
    plain = dict(seconds_per_example=1e-3, bandwidth=1e9, latency=1e-5)
    hidden = predict_data_parallel_step(1e6, 4, 64, overlap=2 / 3, **plain)
    assert hidden["exposed_seconds"] == 0.0 and hidden["efficiency"] == 1.0
    partly = predict_data_parallel_step(1e6, 4, 64, overlap=0.25, **plain)
    assert partly["exposed_seconds"] == pytest.approx(0.00206) and partly["step_seconds"] == pytest.approx(0.01806)
    with pytest.raises(ValueError, match="overlap"):
        predict_data_parallel_step(1e6, 4, 64, overlap=1.5, **plain)


# ---------------------------------------------------------------------------- evaluation
class SecondOfTwo(LocalWorld):
    """Rank 1 of a pretend world of 2: ``allreduce_sum`` adds rank 0's numbers, given beforehand."""

    def __init__(self, rank0_values):
        self.rank, self.size, self.rank0_values = 1, 2, rank0_values

    def allreduce_sum(self, buffer):
        if buffer.dtype == np.float64 and buffer.size == len(self.rank0_values):
            buffer += np.asarray(self.rank0_values)


def test_evaluation_is_shared_between_ranks():
    from lamb_edu.train import DataParallelWorkers
    from lamb_edu.train.metrics import evaluate

    model = nn.MLP([6, 5, 3], seed=0)
    x, y = batch(3, count=10)
    whole_loss, whole_accuracy = evaluate(model, x, y)
    first_loss, first_accuracy = evaluate(model, x[:5], y[:5])  # rank 0's half
    workers = DataParallelWorkers(DataParallel(model, SecondOfTwo([5 * first_loss, 5 * first_accuracy])))
    scored = []
    forward = model.forward
    model.forward = lambda inputs: scored.append(len(inputs)) or forward(inputs)
    loss, accuracy = workers.evaluate(model, x, y)
    assert scored == [5]  # this rank scored its half only
    assert loss == pytest.approx(whole_loss, rel=1e-6) and accuracy == pytest.approx(whole_accuracy)
