"""The optimizer's step bucket by bucket (``BucketSteps``): the same step as the whole one, no bucket stepped
before every rank's status is known, a bucket stepped while the last one is still in flight, and a failed
step that changes nothing on any rank."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import Tensor, nn, optim
from lamb_edu.distributed import BucketSteps, DataParallel, LocalWorld, RankFailure, ShardedOptimizer
from lamb_edu.distributed.world import Pending

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "mpi" / "data_parallel_run.py"
MPI_MISSING = importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None
BUCKET_MB = 20 * 4 / 2**20  # 80 bytes: 4 buckets of the 6-5-4-3 MLP
OPTIMIZERS = {"lamb": lambda p: optim.LAMB(p, lr=0.02, weight_decay=0.01),
              "lars": lambda p: optim.LARS(p, lr=0.5, weight_decay=1e-4),
              "adamw": lambda p: optim.AdamW(p, lr=0.01)}


def batch(seed=0, count=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 6)).astype(np.float32), np.arange(count) % 3


def train(make, world=None, sharded=False, bucket_steps=False, steps=3, scale=1.0):
    """``steps`` seeded steps of a 6-5-4-3 MLP; returns the flat weights, the losses and the DataParallel."""
    model = nn.MLP([6, 5, 4, 3], seed=1)
    parallel = DataParallel(model, world or LocalWorld(), bucket_mb=BUCKET_MB)
    optimizer = make(model.parameters())
    if sharded:
        optimizer = ShardedOptimizer(optimizer, parallel)
    if bucket_steps:
        optimizer = BucketSteps(optimizer, parallel)
    losses = []
    for step in range(steps):
        x, y = parallel.shard(*batch(step))
        model.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x * scale)), y)
        loss.backward()
        losses.append(parallel.all_reduce_gradients(loss.item()))
        optimizer.step()
    return parallel.flat.host_copy(), losses, parallel


@pytest.mark.parametrize("sharded", [False, True], ids=["plain", "sharded"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bucket_by_bucket_equals_the_whole_step(name, sharded):
    reference, reference_losses, _ = train(OPTIMIZERS[name], sharded=sharded)
    weights, losses, parallel = train(OPTIMIZERS[name], sharded=sharded, bucket_steps=True)
    np.testing.assert_allclose(weights, reference, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-7)
    stepped = [number for _, what, number in parallel.buckets.last_events if what == "step"]
    assert stepped == [0, 1, 2, 3]


def accumulated(bucket_steps, sharded, overlap, passes=2, steps=3):
    """LAMB with ``passes`` micro-batches a step, each weighted by its share (``average=False``, as ``fit``)."""
    model = nn.MLP([6, 5, 4, 3], seed=1)
    parallel = DataParallel(model, LocalWorld(), bucket_mb=BUCKET_MB, backward_passes=passes, overlap=overlap)
    optimizer = optim.LAMB(model.parameters(), lr=0.02)
    optimizer = ShardedOptimizer(optimizer, parallel) if sharded else optimizer
    optimizer = BucketSteps(optimizer, parallel) if bucket_steps else optimizer
    for step in range(steps):
        x, y = batch(step)
        model.zero_grad()
        total = 0.0
        for part in np.array_split(np.arange(len(y)), passes):
            loss = nn.cross_entropy(model(Tensor(x[part])), y[part])
            loss.backward(np.asarray(len(part) / len(y), dtype=np.float32))
            total += loss.item() * len(part) / len(y)
        parallel.all_reduce_gradients(total, average=False)
        optimizer.step()
    return parallel.flat.host_copy()


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "after-backward"])
@pytest.mark.parametrize("sharded", [False, True], ids=["plain", "sharded"])
def test_bucket_by_bucket_with_accumulation_equals_the_whole_step(sharded, overlap):
    np.testing.assert_allclose(accumulated(True, sharded, overlap), accumulated(False, sharded, overlap),
                               rtol=1e-6, atol=1e-8)


class TwinWorld(LocalWorld):
    """Rank 0 of 2 whose partner has the same gradient: a bucket's sum (twice this rank's gradient) is
    delivered only when it is waited for, as a slow network would, and each delivery is logged."""

    def __init__(self, log):
        self.rank, self.size, self.log = 0, 2, log

    def start_allreduce_sum(self, buffer):
        def deliver():
            np.multiply(buffer, 2, out=buffer)
            self.log.append(("delivered", buffer.size))
        return Pending(done=deliver)


def test_a_bucket_is_stepped_while_the_last_one_is_still_in_flight(monkeypatch):
    log = []
    update = optim.LAMB.update

    def logged_update(self, p, grad, group, state, grad_scale):
        log.append(("stepped", p.size))
        update(self, p, grad, group, state, grad_scale)

    monkeypatch.setattr(optim.LAMB, "update", logged_update)
    make = lambda p: optim.LAMB(p, lr=0.02, weight_decay=0.01, fused=False)  # noqa: E731  (update per parameter)
    weights, _, _ = train(make, TwinWorld(log), bucket_steps=True, steps=1)
    # buckets: [b2 w2 b1] 19 floats, [w1] 20, [b0] 5, [w0] 30, and the status (3 numbers) on its own.
    # The status arrived before any step; the last layer (w2, 12 floats) was stepped before the first
    # layer's sum (30) was delivered: that step overlapped the last bucket's reduction.
    assert log.index(("delivered", 3)) < log.index(("stepped", 12)) < log.index(("delivered", 30))
    assert log.index(("delivered", 30)) < log.index(("stepped", 30))
    # every bucket was stepped only after its own sum arrived (else it would step with half the gradient)
    log.clear()
    whole, _, _ = train(make, TwinWorld(log), steps=1)
    assert [entry for entry in log if entry[0] == "delivered"][-1] == ("delivered", 32)  # [status | w0], then steps
    np.testing.assert_array_equal(weights, whole)


def test_huge_gradients_fall_back_to_the_checked_whole_step():
    # inputs of 1e20 make gradients whose squares sum above float32's largest value / (4 · size²):
    # a sum over ranks could overflow, so the step waits for every bucket and runs the optimizer's checks
    make = OPTIMIZERS["lars"]
    with np.errstate(over="ignore"):  # ‖g‖² overflows float32 in LARS's ratio, on both paths alike
        reference, _, _ = train(make, steps=1, scale=1e20)
        weights, _, parallel = train(make, bucket_steps=True, steps=1, scale=1e20)
    assert not parallel.buckets.split_safe
    assert [what for _, what, _ in parallel.buckets.last_events].count("step") == 0
    np.testing.assert_array_equal(weights, reference)


def test_a_failed_step_in_one_process_changes_nothing():
    model = nn.MLP([6, 5, 4, 3], seed=1)
    parallel = DataParallel(model, LocalWorld(), bucket_mb=BUCKET_MB)
    optimizer = BucketSteps(optim.LAMB(model.parameters(), lr=0.02), parallel)
    x, y = batch()
    before = parallel.flat.host_copy()
    x[0, 0] = np.nan
    loss = nn.cross_entropy(model(Tensor(x)), y)
    loss.backward()
    with pytest.raises(FloatingPointError, match="every rank"):
        parallel.all_reduce_gradients(loss.item())
    np.testing.assert_array_equal(parallel.flat.host_copy(), before)
    assert not parallel.buckets.in_flight() and not optimizer.state


def test_refusals_and_misuse():
    model = nn.MLP([6, 5, 3], seed=0)
    parallel = DataParallel(model, LocalWorld())
    with pytest.raises(ValueError, match="max_grad_norm"):
        BucketSteps(optim.LAMB(model.parameters(), lr=0.1, max_grad_norm=1.0), parallel)
    with pytest.raises(ValueError, match="Lookahead"):
        BucketSteps(optim.Lookahead(optim.SGD(model.parameters(), lr=0.1)), parallel)
    with pytest.raises(ValueError, match="same parameters"):
        BucketSteps(optim.SGD(model.parameters()[:1], lr=0.1), parallel)
    optimizer = BucketSteps(optim.SGD(model.parameters(), lr=0.1), parallel)
    with pytest.raises(RuntimeError, match="all_reduce_gradients"):
        optimizer.step()
    x, y = batch()
    nn.cross_entropy(model(Tensor(x)), y).backward()
    parallel.all_reduce_gradients(1.0)
    model.zero_grad()
    with pytest.raises(RuntimeError, match="in flight: call optimizer.step"):
        nn.cross_entropy(model(Tensor(x)), y).backward()  # the first step's optimizer.step() was never called
    with pytest.raises(RuntimeError, match="in flight: call optimizer.step"):
        parallel.all_reduce_gradients(1.0)
    optimizer.step()


@pytest.mark.mpi
@pytest.mark.skipif(MPI_MISSING, reason="mpi4py (and mpiexec) not installed: pip install mpi4py mpich")
def test_a_nan_on_one_rank_changes_no_parameter_on_any_rank(tmp_path):
    """Rank 1's early bucket (layers.2.weight) holds a NaN: it is summed during backward, but no bucket is
    stepped; every rank raises RankFailure and keeps its weights and state (LAMB, LARS, AdamW, plain and sharded)."""
    out = tmp_path / "nan.npz"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(DRIVER), str(out), "--fail", "nan-steps"],
                            capture_output=True, text=True, env=environment, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    with np.load(out) as results:
        for name in OPTIMIZERS:
            for mode in ("bucket_steps", "sharded_bucket_steps"):
                assert bool(results[f"{name}/{mode}/unchanged"]), (name, mode)
                assert str(results[f"{name}/{mode}/message"]) == ("rank 1 of 2 failed: the gradient of layers.2.weight "
                                                                  "contains NaN or inf at step 3")
    assert RankFailure.__name__ in DRIVER.read_text()


def test_the_progress_thread_runs_only_with_a_core_to_spare_per_rank():
    cores = os.cpu_count() or 1
    for local_size in (cores, max(1, cores // 2)):  # 2 cores: 2 ranks have none to spare, 1 rank has one
        expected = cores >= 2 * local_size
        world = LocalWorld()
        world.size, world.local_size = 2, local_size  # rank 0's bookkeeping (no collective is called)
        parallel = DataParallel(nn.MLP([6, 5, 3], seed=0), world)
        assert parallel.progress_thread is expected and (parallel.buckets.progress is not None) is expected
    world = LocalWorld()
    world.size, world.local_size = 2, cores
    assert DataParallel(nn.MLP([6, 5, 3], seed=0), world, progress_thread=True).buckets.progress is not None
