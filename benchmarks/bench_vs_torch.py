"""lamb-edu against PyTorch on the CPU, side by side, with the machine's own floors.

    python benchmarks/bench_vs_torch.py              # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench_vs_torch.py --quick      # fewer rounds and steps, prints only

Every measurement runs in its own subprocess (lamb-edu, then PyTorch, alternating, for several
rounds), with the same thread count for both (``--threads``, default 2: OMP/MKL/OpenBLAS threads,
``torch.set_num_threads`` and lamb-edu's ``optim.fast_path.set_num_threads``). Each process reports the
median time of its timed steps; the table gives the median over rounds. PyTorch is optional: without
it only lamb-edu's numbers are shown. It is a benchmark-only extra, never imported by the library.

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
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [784, 256, 256, 10]
BIG_SHAPES = [(1024, 1024), (1024,)] * 24
BYTES_PER_PARAMETER = 28  # read w, g, m, v; write w, m, v (float32)
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
CNN_HYPER = dict(lr=0.02, betas=(0.9, 0.999), weight_decay=0.01)


# ----------------------------------------------------------------------------------- worker side
def mlp_flops(batch: int) -> float:
    """Multiply-adds x2 of forward, grad_W of every layer and grad_x of all but the first."""
    pairs = list(zip(SIZES[:-1], SIZES[1:]))
    forward = sum(2 * batch * a * b for a, b in pairs)
    return forward * 2 + sum(2 * batch * a * b for a, b in pairs[1:])


def time_it(function, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cnn_batches(tiny: bool) -> list:
    """The CNN task's batches, the same for both libraries: 60000 random images in batches of 512 (tiny: 4 x 32)."""
    import numpy as np

    rng = np.random.default_rng(0)
    count, batch = (128, 32) if tiny else (60000, 512)
    x = rng.normal(size=(count, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=count)
    return [(x[begin:begin + batch], y[begin:begin + batch]) for begin in range(0, count, batch)]


def time_epoch(step, batches) -> float:
    """Seconds for one pass of ``step`` over ``batches``, after one untimed warm-up step."""
    step(*batches[0])
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def lamb_edu_task(task: str, steps: int, warmup: int, threads: int) -> float:
    import numpy as np

    from lamb_edu import Tensor, nn, optim
    from lamb_edu.optim import fast_path

    fast_path.set_num_threads(threads)
    rng = np.random.default_rng(0)
    kind, what = task.split(" ")
    if kind == "cnn":
        model = nn.CNN(seed=0)
        optimizer = optim.LAMB(model.parameters(), **CNN_HYPER)

        def cnn_step(x, y):
            optimizer.zero_grad()
            nn.cross_entropy(model(Tensor(x)), y).backward()
            optimizer.step()

        return time_epoch(cnn_step, cnn_batches(what == "tiny"))
    if kind == "mlp":
        batch = int(what)
        model = nn.MLP(SIZES, seed=0)
        optimizer = optim.LAMB(model.parameters(), lr=1e-3, weight_decay=0.01)
        x = rng.normal(size=(batch, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], size=batch)

        def step():
            optimizer.zero_grad()
            loss = nn.cross_entropy(model(Tensor(x)), y)
            loss.backward()
            optimizer.step()

        return time_it(step, steps, warmup)
    shapes = [p.shape for p in nn.MLP(SIZES, seed=0).parameters()] if what == "mlp" else BIG_SHAPES
    params = [Tensor(rng.normal(size=s).astype(np.float32) * 0.05, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = rng.normal(size=p.shape).astype(np.float32)
    if kind == "lamb":
        optimizer = optim.LAMB(params, **HYPER)
    elif kind == "adamw":
        optimizer = optim.AdamW(params, **HYPER)
    else:
        optimizer = optim.Adam(params, lr=HYPER["lr"], betas=HYPER["betas"])
    return time_it(optimizer.step, steps, warmup)


def torch_lamb_step(params, grads, ms, vs, step, lr, betas, weight_decay, eps=1e-6, clamp_value=10.0):
    """LAMB as lamb_edu.optim.LAMB computes it, in torch foreach ops (one multi-tensor call per operation)."""
    import torch

    beta1, beta2 = betas
    torch._foreach_mul_(ms, beta1)
    torch._foreach_add_(ms, grads, alpha=1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
    denominators = torch._foreach_sqrt(vs)
    torch._foreach_div_(denominators, bias_correction2**0.5)
    torch._foreach_add_(denominators, eps)
    updates = torch._foreach_div(ms, denominators)
    torch._foreach_div_(updates, bias_correction1)
    if weight_decay:
        torch._foreach_add_(updates, params, alpha=weight_decay)
    weight_norms = torch.stack(torch._foreach_norm(params))
    update_norms = torch.stack(torch._foreach_norm(updates))
    ratios = torch.where((weight_norms > 0) & (update_norms > 0), weight_norms.clamp(max=clamp_value) / update_norms,
                         torch.ones_like(weight_norms))
    torch._foreach_mul_(updates, [-lr * r for r in ratios.tolist()])
    torch._foreach_add_(params, updates)


def torch_task(task: str, steps: int, warmup: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kind, what = task.split(" ")
    if kind == "cnn":
        nn = torch.nn
        model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
        params = list(model.parameters())
        ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        counter = [0]

        def cnn_step(x, y):
            model.zero_grad(set_to_none=True)
            images = torch.from_numpy(x).view(-1, 1, 28, 28)
            torch.nn.functional.cross_entropy(model(images), torch.from_numpy(y)).backward()
            counter[0] += 1
            with torch.no_grad():
                torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], **CNN_HYPER)

        return time_epoch(cnn_step, cnn_batches(what == "tiny"))
    if kind == "mlp":
        batch = int(what)
        layers = []
        for index, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
            layers.append(torch.nn.Linear(a, b))
            if index < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        params = list(model.parameters())
        ms = [torch.zeros_like(p) for p in params]
        vs = [torch.zeros_like(p) for p in params]
        x, y = torch.randn(batch, SIZES[0]), torch.randint(0, SIZES[-1], (batch,))
        counter = [0]

        def step():
            model.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            counter[0] += 1
            with torch.no_grad():
                torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], 1e-3, (0.9, 0.999), 0.01)

        return time_it(step, steps, warmup)
    if what == "mlp":
        shapes = [tuple(reversed(pair)) for pair in zip(SIZES[:-1], SIZES[1:])]
        shapes = [s for shape in shapes for s in (shape, shape[:1])]
    else:
        shapes = BIG_SHAPES
    params = [(torch.randn(*s) * 0.05).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(*p.shape)
    if kind == "lamb":
        ms = [torch.zeros_like(p) for p in params]
        vs = [torch.zeros_like(p) for p in params]
        grads = [p.grad for p in params]
        counter = [0]

        def step():
            counter[0] += 1
            with torch.no_grad():
                torch_lamb_step(params, grads, ms, vs, counter[0], HYPER["lr"], HYPER["betas"], HYPER["weight_decay"])

        return time_it(step, steps, warmup)
    if kind == "adamw":
        optimizer = torch.optim.AdamW(params, foreach=True, **HYPER)
    else:
        optimizer = torch.optim.Adam(params, lr=HYPER["lr"], betas=HYPER["betas"], foreach=True)
    return time_it(optimizer.step, steps, warmup)


def floors(threads: int) -> dict[str, float]:
    """Matrix-product GFLOP/s and copy GB/s (read + write) on this machine, best of a few tries."""
    import numpy as np

    from lamb_edu.optim import fast_path

    fast_path.set_num_threads(threads)
    a = np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32)
    matmul = min(time_it(lambda: a @ a, 1, 1) for _ in range(5))
    source = np.ones(50_000_000, dtype=np.float32)
    target = np.empty_like(source)

    def copy_piece(start, stop, block):
        np.copyto(target[start:stop], source[start:stop])

    copy = min(time_it(lambda: fast_path._parallel(copy_piece, source.size), 1, 1) for _ in range(5))
    return {"matmul_gflops": 2 * 2048**3 / matmul / 1e9, "copy_gbs": 2 * source.nbytes / copy / 1e9}


# ----------------------------------------------------------------------------------- GPU
def gpu_time(function, synchronize, steps: int, warmup: int) -> float:
    """Median seconds of ``function`` with the device synchronised around each call."""
    def timed():
        function()
        synchronize()
    synchronize()
    return time_it(timed, steps, warmup)


def gpu_task(library: str, task: str, steps: int, warmup: int) -> float:
    import numpy as np

    kind, what = task.split(" ")
    rng = np.random.default_rng(0)
    if library == "lamb_edu":
        import cupy

        from lamb_edu import Tensor, backend, nn, optim

        backend.use("cupy")
        synchronize = cupy.cuda.Device().synchronize
        if task == "floors copy":
            source = cupy.ones(100_000_000, dtype=cupy.float32)
            target = cupy.empty_like(source)
            seconds = gpu_time(lambda: cupy.copyto(target, source), synchronize, 20, 3)
            return 2 * source.nbytes / seconds / 1e9
        if kind == "epoch":
            model = nn.MLP(SIZES, seed=0)
            optimizer = optim.LAMB(model.parameters(), lr=1e-3, weight_decay=0.01)
            x = cupy.asarray(rng.normal(size=(60000, SIZES[0])).astype(np.float32))
            y = cupy.asarray(rng.integers(0, SIZES[-1], size=60000))

            def epoch():
                for begin in range(0, 60000, 512):
                    optimizer.zero_grad()
                    nn.cross_entropy(model(Tensor(x[begin:begin + 512])), y[begin:begin + 512]).backward()
                    optimizer.step()

            return gpu_time(epoch, synchronize, steps, warmup)
        params = [Tensor(cupy.asarray(rng.normal(size=s).astype(np.float32) * 0.05), requires_grad=True)
                  for s in BIG_SHAPES]
        for p in params:
            p.grad = cupy.asarray(rng.normal(size=p.shape).astype(np.float32))
        make = {"lamb": optim.LAMB, "adamw": optim.AdamW, "adam": optim.Adam}[kind]
        optimizer = make(params, lr=HYPER["lr"], weight_decay=0.0 if kind == "adam" else HYPER["weight_decay"])
        return gpu_time(optimizer.step, synchronize, steps, warmup)
    import torch

    device = torch.device("cuda")
    synchronize = torch.cuda.synchronize
    if kind == "epoch":
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(device)
        params = list(model.parameters())
        ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        x = torch.randn(60000, 784, device=device)
        y = torch.randint(0, 10, (60000,), device=device)
        counter = [0]

        def epoch():
            for begin in range(0, 60000, 512):
                model.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x[begin:begin + 512]), y[begin:begin + 512]).backward()
                counter[0] += 1
                with torch.no_grad():
                    torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], 1e-3, (0.9, 0.999), 0.01)

        return gpu_time(epoch, synchronize, steps, warmup)
    params = [(torch.randn(*s, device=device) * 0.05).requires_grad_() for s in BIG_SHAPES]
    for p in params:
        p.grad = torch.randn(*p.shape, device=device)
    if kind == "lamb":
        ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
        counter = [0]

        def step():
            counter[0] += 1
            with torch.no_grad():
                torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], HYPER["lr"], HYPER["betas"],
                                HYPER["weight_decay"])

        return gpu_time(step, synchronize, steps, warmup)
    make = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    optimizer = make(params, lr=HYPER["lr"], weight_decay=0.0 if kind == "adam" else HYPER["weight_decay"],
                     foreach=True)
    return gpu_time(optimizer.step, synchronize, steps, warmup)


def torch_cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def gpu_main(arguments: argparse.Namespace) -> None:
    """The GPU table: optimizer steps on 25.2M parameters and one MLP epoch, lamb-edu (CuPy) against torch CUDA."""
    libraries = ["lamb_edu", "torch"] if torch_cuda_available() else ["lamb_edu"]
    tasks = [("lamb 25M", 50, 5), ("adam 25M", 50, 5), ("adamw 25M", 50, 5), ("epoch 512", 3, 1)]
    times: dict[tuple[str, str], list[float]] = {}
    copies = []
    for round_index in range(arguments.rounds):
        copies.append(run_worker("lamb_edu", "floors copy", 1, 0, arguments.threads, gpu=True)["seconds"])
        for name, steps, warmup in tasks:
            order = libraries if round_index % 2 == 0 else list(reversed(libraries))
            for library in order:
                seconds = run_worker(library, name, steps, warmup, arguments.threads, gpu=True)["seconds"]
                times.setdefault((name, library), []).append(seconds)
    import cupy

    copy = statistics.median(copies)
    count = sum(int(__import__("math").prod(s)) for s in BIG_SHAPES)
    rows = ["| work | lamb-edu (CuPy) ms | PyTorch CUDA ms | lamb-edu / PyTorch | lamb-edu GB/s at 28 B/param | of copy bandwidth |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, _, _ in tasks:
        ours = statistics.median(times[(name, "lamb_edu")]) * 1e3
        theirs = statistics.median(times[(name, "torch")]) * 1e3 if len(libraries) > 1 else None
        kind = name.split(" ")[0]
        if kind == "epoch":
            label, rate, share = "MLP epoch, 60000 examples, batch 512, LAMB", "-", "-"
        else:
            label = f"{ {'lamb': 'LAMB', 'adam': 'Adam', 'adamw': 'AdamW'}[kind] } step, {count / 1e6:.2f}M params"
            value = BYTES_PER_PARAMETER * count / (ours / 1e3) / 1e9
            rate, share = f"{value:.0f}", f"{value / copy:.0%}"
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        rows.append(f"| {label} | {ours:.2f} | {f'{theirs:.2f}' if theirs else '-'} | {ratio} | {rate} | {share} |")
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    device = device.decode() if isinstance(device, bytes) else device
    text = "\n".join([
        f"- Device: {device}; CuPy {cupy.__version__}; PyTorch {torch_version() or 'not installed'}",
        f"- Copy bandwidth measured in the same run: {copy:.0f} GB/s (read + write); {arguments.rounds} rounds, medians",
        "- Command: `python benchmarks/bench_vs_torch.py --gpu`",
        "", *rows])
    print(text)
    write_results(Path(arguments.out), text, section="gpu")


def worker(arguments: argparse.Namespace) -> None:
    if arguments.gpu:
        value = gpu_task(arguments.library, arguments.task, arguments.steps, arguments.warmup)
        print(json.dumps({"seconds": value}))
        return
    if arguments.task == "floors":
        print(json.dumps(floors(arguments.threads)))
        return
    run = lamb_edu_task if arguments.library == "lamb_edu" else torch_task
    seconds = run(arguments.task, arguments.steps, arguments.warmup, arguments.threads)
    print(json.dumps({"seconds": seconds}))


# ----------------------------------------------------------------------------------- parent side
def busy_fraction(seconds: float = 0.5) -> float:
    """The share of all CPUs busy over ``seconds`` (from /proc/stat; 0 where it cannot be read)."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total_before, idle_before = sample()
        time.sleep(seconds)
        total_after, idle_after = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle_after - idle_before) / max(total_after - total_before, 1)


WAITS = {"measurements": 0, "gave_up": 0, "seconds": 0.0}
TOTAL_WAIT = 1800.0  # after this many seconds of waiting in one run, measure without waiting
IDLE_LIMIT = [0.15]  # --idle: the busy share of the CPUs above which a measurement waits


def wait_until_idle(limit: float, max_wait: float = 300.0) -> None:
    """Before a measurement, wait (up to ``max_wait`` s) until other programs leave the CPUs idle.

    Threads that spin while another program holds a core make timings meaningless (PyTorch's
    OpenMP threads and OpenBLAS's most of all), so on a shared machine this keeps runs comparable.
    """
    WAITS["measurements"] += 1
    started = time.monotonic()
    deadline = started + min(max_wait, max(0.0, TOTAL_WAIT - WAITS["seconds"]))
    while busy_fraction() > limit:
        if time.monotonic() > deadline:
            WAITS["gave_up"] += 1
            break
    WAITS["seconds"] += time.monotonic() - started


def run_worker(library: str, task: str, steps: int, warmup: int, threads: int, gpu: bool = False) -> dict[str, float]:
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LAMB_EDU_NUM_THREADS"):
        env[variable] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["LAMB_EDU_BACKEND"] = "numpy"
    if IDLE_LIMIT[0] < 1.0:
        wait_until_idle(IDLE_LIMIT[0])
    command = [sys.executable, __file__, "--worker", "--library", library, "--task", task, "--steps", str(steps),
               "--warmup", str(warmup), "--threads", str(threads)] + (["--gpu"] if gpu else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{library} {task} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_version() -> str | None:
    try:
        import importlib.metadata as metadata

        return metadata.version("torch")
    except Exception:
        return None


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 rounds, fewer steps, do not write RESULTS.md")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--only", default="", help="run only tasks containing this text")
    parser.add_argument("--idle", type=float, default=0.15,
                        help="wait before each measurement until at most this share of the CPUs is busy (1: never wait)")
    parser.add_argument("--gpu", action="store_true", help="the GPU table (CuPy, and PyTorch CUDA if installed)")
    parser.add_argument("--cnn", action="store_true", help="one training epoch of the article's CNN, one run each")
    parser.add_argument("--tiny", action="store_true", help="with --cnn: 4 batches of 32, to check that it runs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--library", default="lamb_edu", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    IDLE_LIMIT[0] = arguments.idle
    if arguments.gpu:
        gpu_main(arguments)
        return
    if arguments.cnn:
        cnn_main(arguments)
        return
    rounds = 3 if arguments.quick else arguments.rounds
    have_torch = torch_version() is not None
    libraries = ["lamb_edu", "torch"] if have_torch else ["lamb_edu"]
    tasks = [("mlp 64", 200, 20), ("mlp 512", 60, 5)]
    for kind in ("lamb", "adam", "adamw"):
        tasks += [(f"{kind} mlp", 300, 20), (f"{kind} 25M", 20, 3)]
    tasks = [task for task in tasks if arguments.only in task[0]]
    if arguments.quick:
        tasks = [(name, max(5, steps // 3), max(1, warmup // 2)) for name, steps, warmup in tasks]
    times: dict[tuple[str, str], list[float]] = {}
    floor_runs = []
    for round_index in range(rounds):
        floor_runs.append(run_worker("lamb_edu", "floors", 1, 0, arguments.threads))
        for name, steps, warmup in tasks:
            order = libraries if round_index % 2 == 0 else list(reversed(libraries))
            for library in order:
                seconds = run_worker(library, name, steps, warmup, arguments.threads)["seconds"]
                times.setdefault((name, library), []).append(seconds)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)
    matmul = statistics.median(f["matmul_gflops"] for f in floor_runs)
    copy = statistics.median(f["copy_gbs"] for f in floor_runs)
    table = make_table(tasks, times, have_torch, matmul, copy)
    import numpy

    header = [
        f"- Machine: {machine_description()}",
        f"- Python {platform.python_version()}, NumPy {numpy.__version__}, PyTorch {torch_version() or 'not installed'} (CPU)",
        f"- Threads: {arguments.threads} for both; {rounds} rounds, each library in its own subprocess, alternating; "
        "medians",
        f"- Floors measured in the same run: float32 matmul {matmul:.0f} GFLOP/s (2048³), copy {copy:.1f} GB/s "
        f"(read + write); so 28 bytes/parameter for 25.2M parameters take at least {28 * 25.1904e6 / copy / 1e6:.1f} ms",
        f"- Command: `python benchmarks/bench_vs_torch.py{' --quick' if arguments.quick else ''}`",
        f"- Each measurement waited for the CPUs to be idle (other programs under {arguments.idle:.0%} busy); "
        f"{WAITS['gave_up']} of {WAITS['measurements']} measurements gave up waiting (at most 5 minutes each, 30 in all)"
        if arguments.idle < 1.0 else "- Measurements did not wait for idle CPUs (--idle 1)",
    ]
    text = "\n".join(header) + "\n\n" + table
    print(text)
    if not arguments.quick and not arguments.only:
        write_results(Path(arguments.out), text)


def cnn_main(arguments: argparse.Namespace) -> None:
    """The CNN epoch: lamb-edu, then PyTorch (when installed), each once in its own process."""
    task = "cnn tiny" if arguments.tiny else "cnn epoch"
    seconds = {"lamb_edu": run_worker("lamb_edu", task, 1, 0, arguments.threads)["seconds"]}
    if torch_version() is not None:
        seconds["torch"] = run_worker("torch", task, 1, 0, arguments.threads)["seconds"]
    ours, theirs = seconds["lamb_edu"], seconds.get("torch")
    ratio = f"{ours / theirs:.2f}x" if theirs else "-"
    work = "4 batches of 32" if arguments.tiny else "one epoch, 60000 examples, batch 512"
    text = "\n".join([
        f"- Machine: {machine_description()}; threads: {arguments.threads} for both; one run each",
        f"- PyTorch {torch_version() or 'not installed'} (CPU); command: `python benchmarks/bench_vs_torch.py --cnn`",
        "", "| work | lamb-edu s | PyTorch s | lamb-edu / PyTorch |", "|---|---:|---:|---:|",
        f"| CNN training ({work}): fwd + CE + bwd + LAMB | {ours:.2f} | "
        f"{f'{theirs:.2f}' if theirs else 'missing'} | {ratio} |",
    ])
    print(text)
    if not arguments.tiny:
        write_results(Path(arguments.out), text, section="cnn")


def make_table(tasks, times, have_torch, matmul, copy) -> str:
    rows = ["| work | lamb-edu ms | PyTorch ms | lamb-edu / PyTorch | lamb-edu GFLOP/s or GB/s | of floor |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, _, _ in tasks:
        ours = statistics.median(times[(name, "lamb_edu")]) * 1e3
        theirs = statistics.median(times[(name, "torch")]) * 1e3 if have_torch else None
        kind, what = name.split(" ")
        if kind == "mlp":
            rate = mlp_flops(int(what)) / (ours / 1e3) / 1e9
            speed, floor = f"{rate:.0f} GFLOP/s", f"{rate / matmul:.0%}"
            label = f"MLP step, batch {what} (fwd + CE + bwd + LAMB)"
        else:
            count = sum(int(__import__('math').prod(s)) for s in BIG_SHAPES) if what == "25M" else \
                sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
            rate = BYTES_PER_PARAMETER * count / (ours / 1e3) / 1e9
            speed, floor = f"{rate:.1f} GB/s", f"{rate / copy:.0%}"
            label = f"{ {'lamb': 'LAMB', 'adam': 'Adam', 'adamw': 'AdamW'}[kind] } step, {count / 1e6:.2f}M params"
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        rows.append(f"| {label} | {ours:.2f} | {f'{theirs:.2f}' if theirs else '-'} | {ratio} | {speed} | {floor} |")
    return "\n".join(rows)


def write_results(path: Path, text: str, section: str = "cpu") -> None:
    """Replace one section of RESULTS.md (between its markers), keeping the rest of the file."""
    begin, end = f"<!-- {section}-results:begin -->", f"<!-- {section}-results:end -->"
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        title = {"cpu": "CPU: lamb-edu against PyTorch", "cnn": "CPU: the article's CNN, one epoch",
                 "gpu": "GPU: lamb-edu on CuPy against PyTorch CUDA"}[section]
        new = old.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(new)
    temporary.replace(path)


if __name__ == "__main__":
    main()
