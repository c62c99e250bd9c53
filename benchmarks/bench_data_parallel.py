"""Data-parallel scaling: step time and images/s at 1, 2 and 4 ranks for one global batch, and the
all-reduce time against message size, fitted to latency + bytes / bandwidth.

The script launches itself under ``mpiexec -n N`` for each N (``--ranks``). Each run trains
``MLP([784, 256, 256, 10])`` (and ``nn.CNN`` when the library has it, ``--model cnn``) on random
MNIST-shaped data with LAMB, global batch ``--batch``, and reports per step, as the slowest rank sees
it: compute (forward + backward of the rank's slice), the gradient all-reduce, the optimizer step
(with ``--shard``, ZeRO-1 plus its all-gather). The largest world also times all-reduces of 4 KiB to
16 MiB, and the script fits them (least squares) and converts the fit to the ring model's per-link
latency and bandwidth (``lamb_edu.distributed.ring_link_from_fit``).

Usage: ``python benchmarks/bench_data_parallel.py [--ranks 1 2 4] [--batch 512] [--steps 30] [--shard]
[--model mlp|cnn] [--json PATH] [--quick]``. Prints a table and writes JSON (default
``benchmarks/data_parallel.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lamb_edu import Tensor, backend, nn, optim
from lamb_edu.distributed import (DataParallel, ShardedOptimizer, fit_latency_bandwidth, get_world,
                                  measure_allreduce, ring_link_from_fit)

REPO = Path(__file__).resolve().parents[1]
MESSAGE_SIZES = [2**k for k in range(12, 25, 2)]  # 4 KiB .. 16 MiB


def build_model(kind: str) -> nn.Module:
    if kind == "cnn":
        return nn.CNN(seed=0)  # only offered when the library has it
    return nn.MLP([784, 256, 256, 10], seed=0)


def worker(args: argparse.Namespace) -> None:
    """One rank: time ``args.steps`` data-parallel steps (after 3 warm-up steps); rank 0 writes the JSON."""
    world = get_world()
    model = build_model(args.model)
    parallel = DataParallel(model, world)
    optimizer = optim.LAMB(model.parameters(), lr=0.01)
    if args.shard:
        optimizer = ShardedOptimizer(optimizer, parallel)
    rng = np.random.default_rng(0)
    shape = (args.batch, 1, 28, 28) if args.model == "cnn" else (args.batch, 784)
    x = backend.asarray(rng.standard_normal(shape).astype(np.float32))
    y = backend.asarray(rng.integers(0, 10, args.batch))
    step_seconds, optimizer_seconds = [], []
    for step in range(args.steps + 3):
        world.barrier()
        began = time.perf_counter()
        xb, yb = parallel.shard(x, y)
        model.zero_grad()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        parallel.all_reduce_gradients(loss.item())
        stepped = time.perf_counter()
        optimizer.step()
        backend.synchronize()
        if step >= 3:
            optimizer_seconds.append(time.perf_counter() - stepped)
            step_seconds.append(time.perf_counter() - began)
    timings = parallel.timings[3:]
    # the slowest rank sets the pace: the maximum over ranks of each rank's mean
    means = np.asarray([np.mean(step_seconds), np.mean([t["compute_seconds"] for t in timings]),
                        np.mean([t["allreduce_seconds"] + t["agree_seconds"] for t in timings]), np.mean(optimizer_seconds)])
    gathered = np.zeros((world.size, 4))
    gathered[world.rank] = means
    world.allreduce_sum(gathered)
    step, compute, communicate, update = gathered.max(axis=0)
    result = {"ranks": world.size, "model": args.model, "global_batch": args.batch, "shard": args.shard,
              "step_seconds": step, "compute_seconds": compute, "allreduce_seconds": communicate,
              "optimizer_seconds": update, "images_per_second": args.batch / step,
              "gradient_bytes": parallel.flat.nbytes}
    if args.shard:
        result["optimizer_state_bytes"] = optimizer.state_bytes()
    if args.messages:
        result["allreduce_by_size"] = measure_allreduce(world, MESSAGE_SIZES, repeats=args.repeats)
    if world.is_root:
        Path(args.worker_out).write_text(json.dumps(result))


def launch(ranks: int, args: argparse.Namespace, messages: bool) -> dict:
    """Run this script's worker under ``mpiexec -n ranks`` and return its JSON."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--worker-out", str(out),
                   "--batch", str(args.batch), "--steps", str(args.steps), "--model", args.model,
                   "--repeats", str(args.repeats)] + (["--shard"] if args.shard else []) + (["--messages"] if messages else [])
        environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
        subprocess.run(command, check=True, env=environment, timeout=600)
        return json.loads(out.read_text())


def report(runs: list[dict]) -> dict:
    """Print the scaling table and the all-reduce fit; return the fit."""
    base = runs[0]["step_seconds"] * runs[0]["ranks"]
    print(f"{'ranks':>5} {'step ms':>9} {'compute':>9} {'allreduce':>10} {'optimizer':>10} {'images/s':>10} {'efficiency':>10}")
    for run in runs:
        efficiency = base / (run["step_seconds"] * run["ranks"])
        print(f"{run['ranks']:>5} {1e3 * run['step_seconds']:>9.2f} {1e3 * run['compute_seconds']:>9.2f} "
              f"{1e3 * run['allreduce_seconds']:>10.2f} {1e3 * run['optimizer_seconds']:>10.2f} "
              f"{run['images_per_second']:>10.0f} {efficiency:>10.2f}")
    largest = runs[-1]
    if largest["ranks"] < 2 or "allreduce_by_size" not in largest:
        return {}
    points = largest["allreduce_by_size"]
    print(f"\nall-reduce on {largest['ranks']} ranks:")
    for point in points:
        print(f"{point['bytes']:>10d} bytes {1e6 * point['seconds']:>10.1f} µs")
    latency, bandwidth = fit_latency_bandwidth([p["bytes"] for p in points], [p["seconds"] for p in points])
    link_latency, link_bandwidth = ring_link_from_fit(latency, bandwidth, largest["ranks"])
    print(f"fit: {1e6 * latency:.1f} µs + bytes / {bandwidth / 1e9:.2f} GB/s; ring model per link: "
          f"latency {1e6 * link_latency:.1f} µs, bandwidth {link_bandwidth / 1e9:.2f} GB/s")
    return {"ranks": largest["ranks"], "latency_seconds": latency, "bandwidth_bytes_per_second": bandwidth,
            "link_latency_seconds": link_latency, "link_bandwidth_bytes_per_second": link_bandwidth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model", choices=["mlp", "cnn"] if hasattr(nn, "CNN") else ["mlp"], default="mlp")
    parser.add_argument("--shard", action="store_true", help="ZeRO-1: shard LAMB's state over the ranks")
    parser.add_argument("--repeats", type=int, default=20, help="timings per message size")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "data_parallel.json"))
    parser.add_argument("--quick", action="store_true", help="a few steps and repeats: checks that it runs")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--messages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 3, 3
    if args.worker_out:
        return worker(args)
    for ranks in args.ranks:
        if args.batch % ranks:
            parser.error(f"--batch {args.batch} cannot be split evenly over {ranks} ranks")
    runs = [launch(ranks, args, messages=ranks == max(args.ranks)) for ranks in sorted(args.ranks)]
    fit = report(runs)
    Path(args.json).write_text(json.dumps({"runs": runs, "allreduce_fit": fit}, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
