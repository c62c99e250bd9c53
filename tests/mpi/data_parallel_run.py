"""A few data-parallel steps of a small MLP on synthetic data, for tests/test_distributed.py.

Run as ``mpiexec -n N python tests/mpi/data_parallel_run.py OUT.npz [--fail data|nan]``. For every
optimizer in ``CONFIGS`` and both modes (plain: every rank steps the whole model; sharded: ZeRO-1),
it records the mean loss of every step, the final flat weights and the first layer's
``m`` (LARS: momentum) from ``optimizer.state_dict()``, and rank 0 writes them to
OUT.npz (atomically). Modes: ``plain`` (one bucket, sent after backward), ``bucketed`` (small
buckets sent during backward; it also records how many buckets started before ``backward()``
returned), ``sharded`` (ZeRO-1, bucketed reduce-scatter), and ``bucket_steps`` and
``sharded_bucket_steps`` (the last two stepped bucket by bucket, ``BucketSteps``). Each rank builds
its model from a different seed: the broadcast of rank 0's weights must make them agree. ``--fail``
injects a fault on rank 1; ``--fail nan-steps`` puts a NaN in one gradient of rank 1's early bucket at
step 3 of every bucket-by-bucket run and records whether any parameter or state changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from lamb_edu import Tensor, nn, optim
from lamb_edu.data import batches, read_idx
from lamb_edu.distributed import BucketSteps, DataParallel, RankFailure, ShardedOptimizer, get_world
from lamb_edu.train import write_atomically

SIZES = [20, 13, 10]  # 413 parameters: every shard boundary for 2 and 4 ranks cuts a layer
EXAMPLES, BATCH, STEPS, SEED = 256, 64, 5, 100
# bucket_mb: 524 bytes, 4 buckets of this MLP
MODES = {"plain": None, "bucketed": 0.0005, "sharded": 0.0005, "bucket_steps": 0.0005, "sharded_bucket_steps": 0.0005}
CONFIGS = {
    "lamb": lambda params: optim.LAMB(params, lr=0.02, betas=(0.9, 0.99), weight_decay=0.01),
    "lars": lambda params: optim.LARS(params, lr=0.5, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.02),
    "adamw": lambda params: optim.AdamW(params, lr=0.01, weight_decay=0.01),
}


def synthetic_data() -> tuple[np.ndarray, np.ndarray]:
    """Inputs from a seeded Gaussian, labels from a random linear teacher: the same on every rank."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((EXAMPLES, SIZES[0])).astype(np.float32)
    y = (x @ rng.standard_normal((SIZES[0], SIZES[-1]))).argmax(axis=1).astype(np.int64)
    return x, y


def run(name: str, mode: str, fail: str) -> tuple[list[float], np.ndarray, np.ndarray, list[int]]:
    world = get_world()
    model = nn.MLP(SIZES, seed=SEED + world.rank)
    parallel = DataParallel(model, world, bucket_mb=MODES[mode])
    optimizer = CONFIGS[name](model.parameters())
    if mode.startswith("sharded"):
        optimizer = ShardedOptimizer(optimizer, parallel)
    if mode.endswith("bucket_steps"):
        optimizer = BucketSteps(optimizer, parallel)
    x, y = synthetic_data()
    losses, early = [], []
    for step, (xb, yb) in enumerate(batches(x, y, BATCH, seed=SEED, epoch=0), start=1):
        if step > STEPS:
            break
        x_local, y_local = parallel.shard(xb, yb)
        if fail == "nan" and world.rank == 1 and step == 3:
            x_local = x_local.copy()
            x_local[0, 0] = np.nan  # a fault on one rank only
        model.zero_grad()
        loss = nn.cross_entropy(model(Tensor(x_local)), y_local)
        loss.backward()
        backward_ended = time.perf_counter()
        losses.append(parallel.all_reduce_gradients(loss.item()))
        optimizer.step()  # (bucket by bucket, the step's events are complete only after it)
        early.append(sum(when < backward_ended for when, what, _ in parallel.buckets.last_events if what == "start"))
    # the optimizer's state as one process would save it (for the sharded one, gathered from every rank)
    saved = optimizer.state_dict()["state"][0]  # a collective for the sharded one: every rank calls it
    first_state = saved["momentum_buffer" if name == "lars" else "m"]
    return losses, parallel.flat.host_copy(), first_state, early


def failed_step_changes_nothing(name: str, mode: str) -> tuple[bool, str]:
    """Two good steps, then a NaN in rank 1's gradient of layers.1.weight (an early bucket) at step 3:
    True when, after the ``RankFailure`` every rank gets, no weight and no optimizer state changed."""
    world = get_world()
    model = nn.MLP(SIZES, seed=SEED)
    poison = [False]

    def nan_at_step_3(p: Any) -> None:
        if poison[0]:
            p.grad[0, 0] = np.nan

    if world.rank == 1:  # registered before the buckets' hooks, so the NaN is in what rank 1 sends
        model.parameters()[2].register_post_accumulate_grad_hook(nan_at_step_3)
    parallel = DataParallel(model, world, bucket_mb=MODES[mode])
    optimizer = CONFIGS[name](model.parameters())
    optimizer = BucketSteps(ShardedOptimizer(optimizer, parallel) if mode.startswith("sharded") else optimizer,
                            parallel)
    x, y = synthetic_data()
    before, message = None, ""
    for step in range(1, 4):
        poison[0] = step == 3
        if poison[0]:
            before = (parallel.flat.host_copy(), flat_state(optimizer))
        xb, yb = parallel.shard(x[:BATCH], y[:BATCH])
        model.zero_grad()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        try:
            parallel.all_reduce_gradients(loss.item())
            optimizer.step()
        except RankFailure as error:
            message = str(error)
    after = (parallel.flat.host_copy(), flat_state(optimizer))
    unchanged = all(np.array_equal(a, b) for a, b in zip(before, after))
    return unchanged, message


def flat_state(optimizer: Any) -> np.ndarray:
    """Every array of the optimizer's state, as one process would save it, end to end (a collective if sharded)."""
    state = optimizer.state_dict()["state"]
    return np.concatenate([np.asarray(value, dtype=np.float64).reshape(-1) for entry in state.values()
                           for value in entry.values()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--fail", choices=["none", "data", "nan", "nan-steps"], default="none")
    args = parser.parse_args()
    world = get_world()
    if args.fail == "data" and world.rank == 1:
        read_idx("/nonexistent/train-images-idx3-ubyte")  # rank 1 cannot read its data; the others wait in a collective
    results = {}
    if args.fail == "nan-steps":
        for name in CONFIGS:
            for mode in ("bucket_steps", "sharded_bucket_steps"):
                unchanged, message = failed_step_changes_nothing(name, mode)
                results[f"{name}/{mode}/unchanged"] = np.asarray(unchanged)
                results[f"{name}/{mode}/message"] = np.asarray(message)
        if world.is_root:
            write_atomically(args.out, lambda handle: np.savez(handle, **results))
        return None
    for name in CONFIGS:
        for mode in MODES:
            losses, weights, first_state, early = run(name, mode, args.fail)
            results[f"{name}/{mode}/losses"] = np.asarray(losses)
            results[f"{name}/{mode}/weights"] = weights
            results[f"{name}/{mode}/first_state"] = first_state
            results[f"{name}/{mode}/started_during_backward"] = np.asarray(early)
    results["size"] = np.asarray(world.size)
    if world.is_root:
        write_atomically(args.out, lambda handle: np.savez(handle, **results))
    return None


if __name__ == "__main__":
    sys.exit(main())
