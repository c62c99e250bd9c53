"""lamb-edu against PyTorch on the CPU, side by side, with the machine's own floors.

    python benchmarks/bench_vs_torch.py              # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench_vs_torch.py --quick      # fewer rounds and steps, prints only

Every measurement runs in its own subprocess (lamb-edu, then PyTorch, alternating, for several
rounds), with the same thread count for both (``--threads``, default 2: OMP/MKL/OpenBLAS threads,
``torch.set_num_threads`` and lamb-edu's ``optim.fused.set_num_threads``). Each process reports the
median time of its timed steps; the table gives the median over rounds. PyTorch is optional: without
it only lamb-edu's numbers are shown. It is a benchmark-only extra, never imported by the library.
With timm installed, timm's ``Lamb`` (the LAMB most PyTorch users run; ``max_grad_norm=None``, and it
does not clamp ‖w‖ at 10) is timed on every LAMB task as a third column; without it that column is left out.

The pieces: ``harness.py`` (timing, subprocesses, idle waits, the one table function, RESULTS.md),
``vs_torch_tasks.py`` (the CPU work per library), ``vs_torch_gpu.py`` (the GPU work), ``torch_lamb.py``
(the PyTorch LAMBs, tested against ``optim.LAMB`` by ``tests/test_torch_lamb.py``); this file is the
command line.

The work:
- ``mlp B``: one training step of MLP([784, 256, 256, 10]) at batch B: forward, cross-entropy,
  backward and a LAMB step (PyTorch: torch.nn with the same LAMB equations in foreach ops).
- ``<opt> mlp`` / ``<opt> 25M``: one optimizer step on the MLP's parameters, and on 25.2M float32
  parameters (24 layers of a 1024x1024 weight and a 1024 bias). Adam and AdamW are compared with
  ``torch.optim.Adam/AdamW(foreach=True)``, LAMB with the same equations written in torch foreach ops.

The floors are measured on the spot: float32 matrix-product GFLOP/s (a 2048³ product) and copy
bandwidth (GB/s counting bytes read plus written), both with the same threads. An optimizer step
must at least read w, g, m, v and write w, m, v: 28 bytes per parameter.

    python benchmarks/bench_vs_torch.py --cnn        # one MNIST-sized epoch of the article's CNN
    python benchmarks/bench_vs_torch.py --cnn --tiny --idle 1   # 4 small batches: checks that it runs

``--cnn`` times one training epoch of ``nn.CNN()`` (conv 1→20 5×5, pool, conv 20→50 5×5, pool,
800→500→10) with LAMB: forward, cross-entropy, backward and the step, on the same 60000 random
examples in batches of 512 for both libraries (PyTorch: torch.nn with the same LAMB equations in
foreach ops), one run each, and writes a CNN section into RESULTS.md (not with ``--tiny``).

    python benchmarks/bench_vs_torch.py --gpu        # needs CuPy and a GPU; PyTorch CUDA if installed

times the optimizer steps on 25.2M parameters and one MNIST-sized epoch of the MLP with LAMB
(60000 random examples, batch 512) on the GPU, against the device's copy bandwidth, and writes a GPU
section into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
from pathlib import Path

import harness
from harness import ROOT, WAITS, machine_description, measure, run_worker, table, version, write_results
from torch_lamb import have
from vs_torch_gpu import lamb_edu_gpu_task, torch_cuda_available, torch_gpu_task
from vs_torch_tasks import (
    BIG_SHAPES,
    BYTES_PER_PARAMETER,
    OPTIMIZER_NAMES,
    describe,
    floors,
    lamb_edu_task,
    torch_task,
    uses_lamb,
)

SCRIPT = str(Path(__file__).resolve())


def libraries_present(gpu: bool = False) -> list[str]:
    """lamb_edu, then torch and timm where installed (and, for the GPU, where PyTorch sees CUDA)."""
    torch_ok = torch_cuda_available() if gpu else have("torch")
    return ["lamb_edu"] + (["torch"] + (["timm"] if have("timm") else []) if torch_ok else [])


def libraries_for(libraries: list[str]):
    """The libraries that run a task: timm only on tasks that step LAMB."""
    return lambda task: [library for library in libraries if library != "timm" or uses_lamb(task)]


def cpu_main(arguments: argparse.Namespace) -> None:
    """The CPU table: MLP training steps and optimizer steps, with the machine's floors."""
    rounds = 3 if arguments.quick else arguments.rounds
    libraries = libraries_present()
    tasks = [("mlp 64", 200, 20), ("mlp 512", 60, 5)]
    for kind in ("lamb", "adam", "adamw"):
        tasks += [(f"{kind} mlp", 300, 20), (f"{kind} 25M", 20, 3)]
    tasks = [task for task in tasks if arguments.only in task[0]]
    if arguments.quick:
        tasks = [(name, max(5, steps // 3), max(1, warmup // 2)) for name, steps, warmup in tasks]
    medians, floor_runs = measure(SCRIPT, tasks, libraries_for(libraries), rounds, arguments.threads,
                                  floors=lambda: run_worker(SCRIPT, "lamb_edu", "floors", 1, 0, arguments.threads))
    matmul = statistics.median(f["matmul_gflops"] for f in floor_runs)
    copy = statistics.median(f["copy_gbs"] for f in floor_runs)
    import numpy

    header = [
        f"- Machine: {machine_description()}",
        f"- Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"PyTorch {version('torch') or 'not installed'} (CPU), timm {version('timm') or 'not installed'}",
        f"- Threads: {arguments.threads} for all; {rounds} rounds, each library in its own subprocess, alternating; "
        "medians",
        f"- Floors measured in the same run: float32 matmul {matmul:.0f} GFLOP/s (2048³), copy {copy:.1f} GB/s "
        f"(read + write); so 28 bytes/parameter for 25.2M parameters take at least "
        f"{28 * 25.1904e6 / copy / 1e6:.1f} ms",
        f"- Command: `python benchmarks/bench_vs_torch.py{' --quick' if arguments.quick else ''}`",
        f"- Each measurement waited for the CPUs to be idle (other programs under {arguments.idle:.0%} busy); "
        f"{WAITS['gave_up']} of {WAITS['measurements']} measurements gave up waiting "
        "(at most 5 minutes each, 30 in all)"
        if arguments.idle < 1.0 else "- Measurements did not wait for idle CPUs (--idle 1)",
    ]
    text = "\n".join(header) + "\n\n" + table(tasks, medians, libraries,
                                              lambda task, seconds: describe(task, seconds, matmul, copy))
    print(text)
    if not arguments.quick and not arguments.only:
        write_results(Path(arguments.out), text)


def cnn_main(arguments: argparse.Namespace) -> None:
    """The CNN epoch: each library once, in its own process."""
    task = ("cnn tiny" if arguments.tiny else "cnn epoch", 1, 0)
    libraries = libraries_present()
    medians, _ = measure(SCRIPT, [task], libraries_for(libraries), 1, arguments.threads)
    text = "\n".join([
        f"- Machine: {machine_description()}; threads: {arguments.threads} for all; one run each",
        f"- PyTorch {version('torch') or 'not installed'} (CPU), timm {version('timm') or 'not installed'}; "
        "command: `python benchmarks/bench_vs_torch.py --cnn`", "",
        table([task], medians, libraries, lambda name, seconds: describe(name, seconds, 1.0, 1.0))])
    print(text)
    if not arguments.tiny:
        write_results(Path(arguments.out), text, section="cnn")


def gpu_main(arguments: argparse.Namespace) -> None:
    """The GPU table: optimizer steps on 25.2M parameters and one MLP epoch, lamb-edu (CuPy) against torch CUDA."""
    import cupy

    libraries = libraries_present(gpu=True)
    tasks = [("lamb 25M", 50, 5), ("adam 25M", 50, 5), ("adamw 25M", 50, 5), ("epoch 512", 3, 1)]
    copies = []
    medians, _ = measure(SCRIPT, tasks, libraries_for(libraries), arguments.rounds, arguments.threads, gpu=True,
                         floors=lambda: copies.append(run_worker(SCRIPT, "lamb_edu", "floors copy", 1, 0,
                                                                 arguments.threads, gpu=True)["seconds"]))
    copy = statistics.median(copies)
    count = sum(math.prod(shape) for shape in BIG_SHAPES)

    def describe_gpu(task: str, seconds: float) -> tuple[str, str, str]:
        kind = task.split(" ")[0]
        if kind == "epoch":
            return "MLP epoch, 60000 examples, batch 512, LAMB", "-", "-"
        rate = BYTES_PER_PARAMETER * count / seconds / 1e9
        return f"{OPTIMIZER_NAMES[kind]} step, {count / 1e6:.2f}M params", f"{rate:.0f} GB/s", f"{rate / copy:.0%}"

    device = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    device = device.decode() if isinstance(device, bytes) else device
    text = "\n".join([
        f"- Device: {device}; CuPy {cupy.__version__}; PyTorch {version('torch') or 'not installed'}; "
        f"timm {version('timm') or 'not installed'}",
        f"- Copy bandwidth measured in the same run: {copy:.0f} GB/s (read + write); "
        f"{arguments.rounds} rounds, medians",
        "- Command: `python benchmarks/bench_vs_torch.py --gpu`",
        "", table(tasks, medians, libraries, describe_gpu, device="GPU")])
    print(text)
    write_results(Path(arguments.out), text, section="gpu")


def worker(arguments: argparse.Namespace) -> None:
    """One measurement, in this (fresh) process: prints one JSON line."""
    if arguments.gpu:
        if arguments.library == "lamb_edu":
            value = lamb_edu_gpu_task(arguments.task, arguments.steps, arguments.warmup)
        else:
            value = torch_gpu_task(arguments.task, arguments.steps, arguments.warmup, arguments.library)
        print(json.dumps({"seconds": value}))
        return
    if arguments.task == "floors":
        print(json.dumps(floors(arguments.threads)))
        return
    if arguments.library == "lamb_edu":
        seconds = lamb_edu_task(arguments.task, arguments.steps, arguments.warmup, arguments.threads)
    else:
        seconds = torch_task(arguments.task, arguments.steps, arguments.warmup, arguments.threads, arguments.library)
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 rounds, fewer steps, do not write RESULTS.md")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--only", default="", help="run only tasks containing this text")
    parser.add_argument("--idle", type=float, default=0.15,
                        help="wait before each measurement until at most this share of the CPUs is busy "
                        "(1: never wait)")
    parser.add_argument("--gpu", action="store_true", help="the GPU table (CuPy, and PyTorch CUDA if installed)")
    parser.add_argument("--cnn", action="store_true", help="one training epoch of the article's CNN, one run each")
    parser.add_argument("--tiny", action="store_true", help="with --cnn: 4 batches of 32, to check that it runs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--library", default="lamb_edu", choices=["lamb_edu", "torch", "timm"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--task", default="", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    harness.IDLE_LIMIT[0] = arguments.idle
    {True: gpu_main, False: cnn_main if arguments.cnn else cpu_main}[arguments.gpu](arguments)


if __name__ == "__main__":
    main()
