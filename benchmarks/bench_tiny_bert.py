"""A TinyBERT training step in lamb-edu against the same model in PyTorch on the CPU, with peak memory.

    python benchmarks/bench_tiny_bert.py                  # threads 1 and 2, 5 rounds, prints a table
    python benchmarks/bench_tiny_bert.py --quick          # 2 rounds of fewer steps: checks that it runs
    python benchmarks/bench_tiny_bert.py --out FILE.md    # also writes the table

The step: ``nn.TinyBERT`` with the issue's defaults (vocab 66, context 64, d_model 128, 2 layers, 4
heads, d_ff 512) on a batch of 64 sequences of 64 characters, 15 % of positions with a target:
forward, masked-LM cross-entropy, backward and a LAMB step (lr 1e-3, weight decay 0.01). PyTorch runs
``benchmarks/torch_tiny_bert.py`` (the same architecture and names, its fused layer norm, attention and
GELU) with the same LAMB equations in foreach ops (``bench_vs_torch.torch_lamb_step``).

Every measurement is its own subprocess, lamb-edu and PyTorch alternating for several rounds, with the
same thread count for both (OMP/MKL/OpenBLAS threads, ``torch.set_num_threads``, LAMB_EDU_NUM_THREADS).
Each process reports the median wall time and the median CPU time of its timed steps; the table gives
the median over rounds. CPU time is the steadier figure on a shared machine (others' jobs stretch
wall time, not CPU time); with 2 threads it also counts the threads' spinning.

Memory: ``first step`` is how far the resident set rises, during the first training step of a fresh
process, above its level just before it (the kernel's high-water mark, reset then): the activations
kept for backward, the gradients, the temporaries and the optimizer's state (m and v, 7 MB here).
Measured in the first step because later steps reuse memory the allocators kept. ``traced``
(lamb-edu only) is the peak of a later step from ``tracemalloc``, which sees every NumPy array.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = dict(vocab_size=66, context=64, d_model=128, n_layers=2, n_heads=4, d_ff=512)
BATCH, SEQ, MASKED = 64, 64, 0.15
LR, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 0.01


def batch_arrays():
    """The same ids and targets for both libraries: random characters, 15 % of positions with a target."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(0, CONFIG["vocab_size"], size=(BATCH, SEQ))
    targets = np.where(rng.random((BATCH, SEQ)) < MASKED, rng.integers(0, CONFIG["vocab_size"], size=(BATCH, SEQ)),
                       -100)
    return ids, targets


def lamb_edu_step():
    from lamb_edu import nn, optim

    model = nn.TinyBERT(**CONFIG, seed=0)
    optimizer = optim.LAMB(model.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    ids, targets = batch_arrays()

    def step():
        optimizer.zero_grad()
        nn.masked_lm_cross_entropy(model(ids), targets).backward()
        optimizer.step()

    return step


def torch_step(threads: int):
    import torch
    from bench_vs_torch import torch_lamb_step
    from torch_tiny_bert import TorchTinyBERT

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TorchTinyBERT(**CONFIG)
    params = list(model.parameters())
    ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    ids, targets = (torch.from_numpy(a) for a in batch_arrays())
    counter = [0]

    def step():
        model.zero_grad(set_to_none=True)
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.reshape(-1, CONFIG["vocab_size"]), targets.reshape(-1)).backward()
        counter[0] += 1
        with torch.no_grad():
            torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], LR, BETAS, WEIGHT_DECAY)

    return step


# ----------------------------------------------------------------------------------- worker side
def resident_mb() -> tuple[float, float]:
    """(current, high-water) resident set in MB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def step_peak_mb(step) -> float:
    """How far the resident set rises above its level before ``step`` during it (high-water mark reset first)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before, _ = resident_mb()
    step()
    return resident_mb()[1] - before


def traced_peak_mb(step) -> float:
    import tracemalloc

    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - start) / 2**20


def worker(arguments: argparse.Namespace) -> dict[str, float]:
    step = lamb_edu_step() if arguments.library == "lamb_edu" else torch_step(arguments.threads[0])
    result = {"first_step_mb": step_peak_mb(step)}  # a fresh process: nothing kept from an earlier step
    for _ in range(arguments.warmup):
        step()
    wall, cpu = [], []
    for _ in range(arguments.steps):
        started, started_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    result.update(seconds=statistics.median(wall), cpu_seconds=statistics.median(cpu), rss_mb=resident_mb()[0])
    if arguments.library == "lamb_edu":
        result["traced_peak_mb"] = traced_peak_mb(step)
    return result


# ----------------------------------------------------------------------------------- parent side
def run_worker(library: str, threads: int, steps: int, warmup: int) -> dict[str, float]:
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LAMB_EDU_NUM_THREADS"):
        env[variable] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")])
    env["LAMB_EDU_BACKEND"] = "numpy"
    command = [sys.executable, __file__, "--worker", "--library", library, "--threads", str(threads),
               "--steps", str(steps), "--warmup", str(warmup)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{library} with {threads} threads failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def measure(threads: list[int], rounds: int, steps: int, warmup: int) -> dict[tuple[str, int], dict[str, float]]:
    """The median over rounds of each library's worker results, per thread count."""
    libraries = ["lamb_edu", "torch"] if have_torch() else ["lamb_edu"]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for count in threads:
            for library in libraries:
                runs.setdefault((library, count), []).append(run_worker(library, count, steps, warmup))
    return {key: {field: statistics.median(r[field] for r in results) for field in results[0]}
            for key, results in runs.items()}


def table(results: dict[tuple[str, int], dict[str, float]], threads: list[int]) -> str:
    lines = ["| threads | lamb-edu wall | PyTorch wall | ratio | lamb-edu CPU | PyTorch CPU | ratio | "
             "first step lamb-edu / PyTorch | traced (lamb-edu) |", "|---" * 9 + "|"]
    for count in threads:
        ours, theirs = results[("lamb_edu", count)], results.get(("torch", count))
        if theirs is None:
            lines.append(f"| {count} | {ours['seconds'] * 1e3:.0f} ms | - | - | {ours['cpu_seconds'] * 1e3:.0f} ms | - "
                         f"| - | {ours['first_step_mb']:.0f} MB / - | {ours['traced_peak_mb']:.0f} MB |")
            continue
        lines.append(f"| {count} | {ours['seconds'] * 1e3:.0f} ms | {theirs['seconds'] * 1e3:.0f} ms | "
                     f"{ours['seconds'] / theirs['seconds']:.2f}x | {ours['cpu_seconds'] * 1e3:.0f} ms | "
                     f"{theirs['cpu_seconds'] * 1e3:.0f} ms | {ours['cpu_seconds'] / theirs['cpu_seconds']:.2f}x | "
                     f"{ours['first_step_mb']:.0f} MB / {theirs['first_step_mb']:.0f} MB | "
                     f"{ours['traced_peak_mb']:.0f} MB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 steps")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--library", choices=("lamb_edu", "torch"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(worker(arguments)))
        return
    if arguments.quick:
        arguments.rounds, arguments.steps, arguments.warmup = 2, 3, 1
    load_before, started = os.getloadavg()[0], time.perf_counter()
    results = measure(arguments.threads, arguments.rounds, arguments.steps, arguments.warmup)
    text = (f"TinyBERT training step (batch {BATCH} x {SEQ} characters, {CONFIG}), medians of "
            f"{arguments.rounds} rounds of {arguments.steps} steps; load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs; "
            f"{time.perf_counter() - started:.0f} s in all\n\n"
            + table(results, arguments.threads))
    print(text)
    if arguments.out:
        arguments.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
