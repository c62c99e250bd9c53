"""Data-parallel scaling: images/s at 1, 2 and 4 ranks for one global batch, plain and ZeRO-1, with where
each step's time goes, and the all-reduce time against message size fitted to latency + bytes / bandwidth.

The script launches itself under ``mpiexec -n N`` for each N (``--ranks``), model (``--models``) and
mode (``--modes``). Each run trains the model on random data of its shape (MNIST images; for ``bert``,
the tiny BERT's defaults, windows of 64 characters with 15 % to predict) with LAMB at global batch
``--batch`` (gradient buckets of ``--bucket-mb``, sent during backward) and reports per step, as the
slowest rank sees it:

- compute: forward and backward of the rank's slice (starting the buckets included);
- exposed communication: the time spent waiting for the gradient's buckets after backward, plus,
  with ZeRO-1, the parameters' all-gather (communication backward did not hide);
- optimizer: LAMB's step (with ZeRO-1, on the rank's shard, its one all-reduce of a number per layer
  included).

and the bytes each rank sends per step in ring algorithms (``distributed.ring_bytes_per_rank``). The
script also times all-reduces of 4 KiB to 16 MiB on as many ranks as cores; the fit minimises the relative error
(``distributed.fit_latency_bandwidth``) and gives the ring model's per-link latency and bandwidth.
``--models bert --batch 64`` measures the tiny BERT (64 sequences, 4096 characters a step).

Usage: ``python benchmarks/bench_data_parallel.py [--ranks 1 2 4] [--models mlp cnn] [--modes plain sharded
plain-steps sharded-steps] [--batch 512] [--steps 30] [--bucket-mb auto] [--progress-thread auto|on|off]
[--baseline-blas-threads 2] [--rounds 1] [--json PATH] [--quick]``. ``--rounds N`` runs every configuration
N times in turn and reports the medians (this machine's speed drifts by several per cent between runs).
Speed-ups are over one process that trains without ``DataParallel`` (mode "single"); "plain" on 1 rank
is the ranks' own code (flat buffer, hooks, checks) on one process.
``-steps`` modes step the optimizer bucket by bucket (``BucketSteps``); ``--baseline-blas-threads 2`` also
times one process whose matrix products use both cores (OpenBLAS threads; lamb-edu's own loops then one
thread). Prints a table and writes JSON (default ``benchmarks/data_parallel.json``) with the machine's load
before and after. Keep ``--steps`` small: the batch is fixed, so after about 140 steps LAMB has fitted it, the
gradients become subnormal numbers and every step slows down several times.
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
from lamb_edu.distributed import (
    DEFAULT_BUCKET_MB,
    BucketSteps,
    DataParallel,
    LocalWorld,
    ShardedOptimizer,
    fit_latency_bandwidth,
    get_world,
    measure_allreduce,
    ring_bytes_per_rank,
    ring_link_from_fit,
)
from lamb_edu.host_threads import num_threads

REPO = Path(__file__).resolve().parents[1]
MESSAGE_SIZES = [2**k for k in range(12, 25, 2)]  # 4 KiB .. 16 MiB
BERT_VOCAB, BERT_CONTEXT = 66, 64  # the tiny BERT's defaults: 65 characters and the mask, 64 a window


def _images(batch: int, shape: tuple[int, ...], rng: np.random.Generator) -> tuple:
    """Random MNIST-shaped images and digit labels."""
    return (rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 10, batch))


def _masked_windows(batch: int, rng: np.random.Generator) -> tuple:
    """Random character windows, 15 % of positions to predict (the others -100, ignored)."""
    ids = rng.integers(0, BERT_VOCAB, (batch, BERT_CONTEXT))
    return ids, np.where(rng.random(ids.shape) < 0.15, ids, -100)


# name: (how to build it, a random batch of a given size, the loss)
MODELS = {
    "mlp": (lambda: nn.MLP([784, 256, 256, 10], seed=0), lambda b, rng: _images(b, (784,), rng),
            lambda model, x, y: nn.cross_entropy(model(Tensor(x)), y)),
    "cnn": (lambda: nn.CNN(seed=0), lambda b, rng: _images(b, (1, 28, 28), rng),
            lambda model, x, y: nn.cross_entropy(model(Tensor(x)), y)),
    "bert": (lambda: nn.TinyBERT(BERT_VOCAB, BERT_CONTEXT, seed=0), _masked_windows,
             lambda model, x, y: nn.masked_lm_cross_entropy(model(x), y)),
}


def timed_steps(args: argparse.Namespace, world, model, parallel, optimizer) -> np.ndarray:
    """Per timed step: [step, compute, exposed communication, optimizer] seconds on this rank.

    ``parallel=None``: one process without ``DataParallel`` (mode "single"), nothing exposed.
    """
    rng = np.random.default_rng(0)
    _, make_batch, loss_of = MODELS[args.model]
    x, y = (backend.asarray(array) for array in make_batch(args.batch, rng))
    rows = []
    for step in range(args.steps + 3):
        world.barrier()
        began = time.perf_counter()
        xb, yb = parallel.shard(x, y) if parallel else (x, y)
        model.zero_grad()
        loss = loss_of(model, xb, yb)
        loss.backward()
        parallel.all_reduce_gradients(loss.item()) if parallel else loss.item()
        stepped = time.perf_counter()
        optimizer.step()
        backend.synchronize()
        ended = time.perf_counter()
        timing = parallel.timings[-1] if parallel else {"compute_seconds": stepped - began, "exposed_seconds": 0.0}
        # communication waited for inside optimizer.step(): the all-gather, and the buckets (BucketSteps)
        waited = timing.get("gather_seconds", 0.0) + timing.get("bucket_wait_seconds", 0.0)
        if step >= 3:  # after the warm-up
            rows.append([ended - began, timing["compute_seconds"], timing["exposed_seconds"] + waited,
                         ended - stepped - waited])
    return np.asarray(rows)


def single(args: argparse.Namespace) -> None:
    """Mode "single": one process, no ``DataParallel`` (no flat buffer, no buckets); writes the JSON."""
    model = MODELS[args.model][0]()
    rows = timed_steps(args, LocalWorld(), model, None, optim.LAMB(model.parameters(), lr=0.01)).mean(axis=0)
    step, compute, exposed, update = (float(value) for value in rows)
    result = {"ranks": 1, "model": args.model, "mode": "single", "global_batch": args.batch,
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "host_threads": num_threads(),
              "progress_thread": False, "bucket_mb_option": None, "bucket_mb": None, "buckets": 0,
              "step_seconds": step, "compute_seconds": compute, "exposed_communication_seconds": exposed,
              "optimizer_seconds": update, "images_per_second": args.batch / step,
              "parameters": sum(p.size for p in model.parameters()), "traffic_bytes_per_step": {},
              "ring_bytes_per_rank": 0}
    Path(args.worker_out).write_text(json.dumps(result))


def worker(args: argparse.Namespace) -> None:
    """One rank: time ``args.steps`` data-parallel steps (after 3 warm-up steps); rank 0 writes the JSON."""
    if args.mode == "single":
        return single(args)
    world = get_world()
    model = MODELS[args.model][0]()
    progress = {"auto": None, "on": True, "off": False}[args.progress_thread]
    bucket_mb = args.bucket_mb if args.bucket_mb == "auto" else float(args.bucket_mb) or None
    parallel = DataParallel(model, world, bucket_mb=bucket_mb, progress_thread=progress)
    optimizer = optim.LAMB(model.parameters(), lr=0.01)
    if args.mode.startswith("sharded"):
        optimizer = ShardedOptimizer(optimizer, parallel)
    if args.mode.endswith("-steps"):
        optimizer = BucketSteps(optimizer, parallel)
    rows = timed_steps(args, world, model, parallel, optimizer)
    # the slowest rank sets the pace: the maximum over ranks of each rank's mean
    gathered = np.zeros((world.size, 4))
    gathered[world.rank] = rows.mean(axis=0)
    world.allreduce_sum(gathered)
    step, compute, exposed, update = gathered.max(axis=0)
    traffic = optimizer.traffic() if hasattr(optimizer, "traffic") else parallel.traffic()
    result = {"ranks": world.size, "model": args.model, "mode": args.mode, "global_batch": args.batch,
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "host_threads": num_threads(),
              "progress_thread": parallel.buckets.progress is not None,
              "bucket_mb_option": args.bucket_mb, "bucket_mb": parallel.bucket_mb,
              "buckets": len(parallel.buckets.plan), "step_seconds": step,
              "compute_seconds": compute, "exposed_communication_seconds": exposed, "optimizer_seconds": update,
              "images_per_second": args.batch / step, "parameters": parallel.flat.numel,
              "traffic_bytes_per_step": traffic, "ring_bytes_per_rank": ring_bytes_per_rank(traffic, world.size)}
    if args.mode.startswith("sharded"):
        sharded = optimizer.optimizer if args.mode.endswith("-steps") else optimizer
        result["optimizer_state_bytes"] = sharded.state_bytes()
    if args.messages:
        result["allreduce_by_size"] = measure_allreduce(world, MESSAGE_SIZES, repeats=args.repeats)
    if world.is_root:
        Path(args.worker_out).write_text(json.dumps(result))


def launch(ranks: int, model: str, mode: str, args: argparse.Namespace, messages: bool,
           bucket_mb: float | None = None, blas_threads: int | None = None) -> dict:
    """Run this script's worker under ``mpiexec -n ranks`` and return its JSON.

    ``blas_threads``: that many OpenBLAS threads and one lamb-edu thread (else ``OPENBLAS_NUM_THREADS``, 1 by default).
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--worker-out", str(out),
                   "--batch", str(args.batch), "--steps", str(args.steps), "--model", model, "--mode", mode,
                   "--bucket-mb", str(args.bucket_mb if bucket_mb is None else bucket_mb),
                   "--repeats", str(args.repeats), "--progress-thread", args.progress_thread]
        command += ["--messages"] if messages else []
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": threads}
        if blas_threads:
            environment.update(OPENBLAS_NUM_THREADS=str(blas_threads), LAMB_EDU_NUM_THREADS="1")
        subprocess.run(command, check=True, env=environment, timeout=900)
        return json.loads(out.read_text())


def _bucket_mb(text: str) -> str:
    """``--bucket-mb``: "auto" or a number of megabytes >= 0 (kept as text for the ranks' command line)."""
    if text != "auto" and not float(text) >= 0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number >= 0, got {text!r}")
    return text


TIMES = ("step_seconds", "compute_seconds", "exposed_communication_seconds", "optimizer_seconds")


def medians(rounds: list[list[dict]]) -> list[dict]:
    """One run per configuration: each time the median over the rounds (their step times kept in a list)."""
    merged = []
    for runs in zip(*rounds):
        run = dict(runs[len(runs) // 2])
        for key in TIMES:
            run[key] = float(np.median([r[key] for r in runs]))
        run["images_per_second"] = run["global_batch"] / run["step_seconds"]
        run["rounds"], run["step_seconds_each_round"] = len(runs), [r["step_seconds"] for r in runs]
        merged.append(run)
    return merged


def print_table(runs: list[dict]) -> None:
    """Images/s, speed-up over one process of the same model, and the step's breakdown in ms."""
    print(f"{'model':>5} {'mode':>13} {'ranks':>5} {'BLAS':>4} {'step ms':>8} {'compute':>8} {'exposed':>8} "
          f"{'optim':>7} {'images/s':>9} {'speed-up':>8} {'MB sent':>8}")
    for run in runs:
        one = next(r for r in runs if r["model"] == run["model"] and r["mode"] == "single"
                   and r.get("blas_threads") == runs[0].get("blas_threads"))
        print(f"{run['model']:>5} {run['mode']:>13} {run['ranks']:>5} {run.get('blas_threads'):>4} "
              f"{1e3 * run['step_seconds']:>8.2f} {1e3 * run['compute_seconds']:>8.2f} "
              f"{1e3 * run['exposed_communication_seconds']:>8.2f} {1e3 * run['optimizer_seconds']:>7.2f} "
              f"{run['images_per_second']:>9.0f} {run['images_per_second'] / one['images_per_second']:>8.2f} "
              f"{run['ring_bytes_per_rank'] / 1e6:>8.2f}")


def print_sweep(runs: list[dict], ranks: int) -> None:
    """Plain data parallelism on ``ranks`` ranks by bucket size: step time and exposed communication."""
    print(f"\nbucket sizes, plain, {ranks} ranks:")
    for run in sorted((r for r in runs if r["ranks"] == ranks and r["mode"] == "plain"),
                      key=lambda r: (r["model"], r["bucket_mb"] or float("inf"))):
        size = f"{run['bucket_mb']} MB" if run["bucket_mb"] else "one bucket"
        size = f"auto, {size}" if run.get("bucket_mb_option") == "auto" else size
        print(f"{run['model']:>5} {size:>18} ({run['buckets']} buckets): step {1e3 * run['step_seconds']:.2f} ms, "
              f"exposed communication {1e3 * run['exposed_communication_seconds']:.2f} ms")


def fit_report(points: list[dict], ranks: int) -> dict:
    """Print the all-reduce times and their fit; return the fit and its per-link ring model."""
    print(f"\nall-reduce on {ranks} ranks:")
    latency, bandwidth = fit_latency_bandwidth([p["bytes"] for p in points], [p["seconds"] for p in points])
    for point in points:
        predicted = latency + point["bytes"] / bandwidth
        print(f"{point['bytes']:>10d} bytes {1e6 * point['seconds']:>10.1f} µs   fit {1e6 * predicted:>10.1f} µs")
    link_latency, link_bandwidth = ring_link_from_fit(latency, bandwidth, ranks)
    print(f"fit (relative error): {1e6 * latency:.1f} µs + bytes / {bandwidth / 1e9:.2f} GB/s; ring model per link: "
          f"latency {1e6 * link_latency:.1f} µs, bandwidth {link_bandwidth / 1e9:.2f} GB/s")
    return {"ranks": ranks, "latency_seconds": latency, "bandwidth_bytes_per_second": bandwidth,
            "link_latency_seconds": link_latency, "link_bandwidth_bytes_per_second": link_bandwidth}


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes), as ``uptime`` prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"])
    parser.add_argument("--modes", nargs="+", choices=["plain", "sharded", "plain-steps", "sharded-steps"],
                        default=["plain", "sharded"], help="-steps: the optimizer steps bucket by bucket (BucketSteps)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--bucket-mb", type=_bucket_mb, default="auto",
                        help=f"0: one bucket, after backward; auto (default): {DEFAULT_BUCKET_MB} with two cores per "
                             "rank, else one bucket")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration this many times, in turn, and report the medians")
    parser.add_argument("--bucket-sweep", type=float, nargs="*", default=[0, 0.0625, 1],
                        help="also time plain data parallelism with these bucket sizes (MB; 0: one bucket), on as "
                             "many ranks as cores")
    parser.add_argument("--repeats", type=int, default=20, help="timings per message size")
    parser.add_argument("--progress-thread", choices=["auto", "on", "off"], default="auto",
                        help="the thread that pokes MPI during backward (auto: only with two cores per rank)")
    parser.add_argument("--baseline-blas-threads", type=int, default=0,
                        help="also time one process with this many BLAS threads (and one lamb-edu thread)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "data_parallel.json"))
    parser.add_argument("--quick", action="store_true", help="a few steps and repeats: checks that it runs")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--messages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 3, 3
    if args.worker_out:
        return worker(args)
    if any(args.batch % ranks for ranks in args.ranks):
        parser.error(f"--batch {args.batch} cannot be split evenly over each of --ranks {args.ranks}")
    load_before, started = load(), time.perf_counter()
    rounds = []
    for _ in range(max(1, args.rounds)):  # every configuration once a round, so slow spells of the machine spread
        # one process without DataParallel (the reference), then the modes; plain also on 1 rank (same code)
        runs = [launch(ranks, model, mode, args, messages=False) for model in args.models
                for ranks, mode in [(1, "single")] + [(ranks, mode) for mode in args.modes
                                                      for ranks in sorted(set(args.ranks) | {1})
                                                      if ranks > 1 or mode == "plain"]]
        runs += [launch(1, model, "single", args, messages=False, blas_threads=args.baseline_blas_threads)
                 for model in args.models if args.baseline_blas_threads]
        rounds.append(runs)
    runs = medians(rounds)
    largest = max(args.ranks)
    cores = min(largest, os.cpu_count() or 1)
    sweep = [launch(cores, model, "plain", args, messages=False, bucket_mb=size) for model in args.models
             for size in args.bucket_sweep if cores > 1]
    # the message sizes on as many ranks as cores: more ranks than cores measure waiting for a core
    messages = launch(cores, args.models[0], "plain", args, messages=True)["allreduce_by_size"] if cores > 1 else []
    print_table(runs)
    print_sweep(runs + sweep, cores)
    fit = fit_report(messages, cores) if messages else {}
    document = {"runs": runs, "bucket_sweep": sweep, "allreduce_by_size": messages, "allreduce_fit": fit,
                "machine": {"cores": os.cpu_count(), "load_before": load_before, "load_after": load(),
                            "wall_seconds": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d %H:%M")}}
    Path(args.json).write_text(json.dumps(document, indent=1))
    print(f"\nload average before {load_before}, after {document['machine']['load_after']}; wrote {args.json}")


if __name__ == "__main__":
    main()
