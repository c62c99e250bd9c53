"""The work ``bench_vs_torch.py`` times on the CPU, for each library: one function per library, one task name.

Task names: ``mlp B`` (one training step of MLP([784, 256, 256, 10]) at batch B with LAMB),
``<opt> mlp`` and ``<opt> 25M`` (one optimizer step, opt in lamb, adam, adamw, on the MLP's
parameters or on 25.2M parameters), ``cnn epoch`` / ``cnn tiny`` (an epoch of the article's CNN, or
4 batches of 32). Libraries: ``lamb_edu``; ``torch`` (torch.nn, ``torch.optim.Adam/AdamW(foreach=True)``
and the LAMB of ``torch_lamb``); ``timm`` (the same torch models with ``timm.optim.Lamb``: LAMB tasks only).
``floors`` measures the machine's matrix-product GFLOP/s and copy GB/s with the same threads.
"""

from __future__ import annotations

import numpy as np
from harness import time_epoch, time_it
from torch_lamb import lamb_stepper

SIZES = [784, 256, 256, 10]
BIG_SHAPES = [(1024, 1024), (1024,)] * 24
BYTES_PER_PARAMETER = 28  # read w, g, m, v; write w, m, v (float32)
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
CNN_HYPER = dict(lr=0.02, betas=(0.9, 0.999), weight_decay=0.01)
OPTIMIZER_NAMES = {"lamb": "LAMB", "adam": "Adam", "adamw": "AdamW"}


def uses_lamb(task: str) -> bool:
    """Whether the task steps LAMB (so timm's Lamb can run it too)."""
    return task.split(" ")[0] in ("mlp", "lamb", "cnn", "epoch")


def parameter_count(what: str) -> int:
    """Parameters of the ``25M`` set or of the MLP."""
    if what == "25M":
        return sum(int(np.prod(shape)) for shape in BIG_SHAPES)
    return sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))


def mlp_flops(batch: int) -> float:
    """Multiply-adds x2 of forward, grad_W of every layer and grad_x of all but the first."""
    pairs = list(zip(SIZES[:-1], SIZES[1:]))
    forward = sum(2 * batch * a * b for a, b in pairs)
    return forward * 2 + sum(2 * batch * a * b for a, b in pairs[1:])


def cnn_batches(tiny: bool) -> list:
    """The CNN task's batches, the same for both libraries: 60000 random images in batches of 512 (tiny: 4 x 32)."""
    rng = np.random.default_rng(0)
    count, batch = (128, 32) if tiny else (60000, 512)
    x = rng.normal(size=(count, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=count)
    return [(x[begin:begin + batch], y[begin:begin + batch]) for begin in range(0, count, batch)]


# ----------------------------------------------------------------------------------- lamb-edu
def lamb_edu_task(task: str, steps: int, warmup: int, threads: int) -> float:
    """Seconds (median per step, or one epoch) of ``task`` in lamb-edu with ``threads`` threads."""
    from lamb_edu import Tensor, nn, optim
    from lamb_edu.optim import fused

    fused.set_num_threads(threads)
    rng = np.random.default_rng(0)
    kind, what = task.split(" ")
    if kind in ("cnn", "mlp"):
        model = nn.CNN(seed=0) if kind == "cnn" else nn.MLP(SIZES, seed=0)
        optimizer = optim.LAMB(model.parameters(), **(CNN_HYPER if kind == "cnn" else HYPER))

        def train_step(x, y):
            optimizer.zero_grad()
            nn.cross_entropy(model(Tensor(x)), y).backward()
            optimizer.step()

        if kind == "cnn":
            return time_epoch(train_step, cnn_batches(what == "tiny"))
        x = rng.normal(size=(int(what), SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], size=int(what))
        return time_it(lambda: train_step(x, y), steps, warmup)
    shapes = [p.shape for p in nn.MLP(SIZES, seed=0).parameters()] if what == "mlp" else BIG_SHAPES
    params = [Tensor(rng.normal(size=s).astype(np.float32) * 0.05, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = rng.normal(size=p.shape).astype(np.float32)
    if kind == "adam":
        optimizer = optim.Adam(params, lr=HYPER["lr"], betas=HYPER["betas"])
    else:
        optimizer = {"lamb": optim.LAMB, "adamw": optim.AdamW}[kind](params, **HYPER)
    return time_it(optimizer.step, steps, warmup)


# ----------------------------------------------------------------------------------- PyTorch (and timm)
def torch_mlp():
    """MLP(SIZES) in torch.nn: Linear and ReLU layers."""
    import torch

    layers = []
    for index, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if index < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_cnn():
    """The article's CNN in torch.nn (lamb-edu's ``nn.CNN``)."""
    import torch

    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def torch_task(task: str, steps: int, warmup: int, threads: int, library: str = "torch") -> float:
    """Seconds of ``task`` in PyTorch, its LAMB being ``library``'s ("torch": ``torch_lamb``; "timm")."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kind, what = task.split(" ")
    if kind in ("cnn", "mlp"):
        model = torch_cnn() if kind == "cnn" else torch_mlp()
        lamb_step = lamb_stepper(library, list(model.parameters()), **(CNN_HYPER if kind == "cnn" else HYPER))

        def train_step(x, y):
            model.zero_grad(set_to_none=True)
            images = torch.as_tensor(x).view(-1, 1, 28, 28) if kind == "cnn" else torch.as_tensor(x)
            torch.nn.functional.cross_entropy(model(images), torch.as_tensor(y)).backward()
            lamb_step()

        if kind == "cnn":
            return time_epoch(train_step, cnn_batches(what == "tiny"))
        x, y = torch.randn(int(what), SIZES[0]), torch.randint(0, SIZES[-1], (int(what),))
        return time_it(lambda: train_step(x, y), steps, warmup)
    if what == "mlp":
        shapes = [p.shape for p in torch_mlp().parameters()]
    else:
        shapes = BIG_SHAPES
    params = [(torch.randn(*s) * 0.05).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(*p.shape)
    if kind == "lamb":
        return time_it(lamb_stepper(library, params, **HYPER), steps, warmup)
    if kind == "adamw":
        optimizer = torch.optim.AdamW(params, foreach=True, **HYPER)
    else:
        optimizer = torch.optim.Adam(params, lr=HYPER["lr"], betas=HYPER["betas"], foreach=True)
    return time_it(optimizer.step, steps, warmup)


def floors(threads: int) -> dict[str, float]:
    """Matrix-product GFLOP/s and copy GB/s (read + write) on this machine, best of a few tries."""
    from lamb_edu.optim.fused import threads as fused_threads

    fused_threads.set_num_threads(threads)
    a = np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32)
    matmul = min(time_it(lambda: a @ a, 1, 1) for _ in range(5))
    source = np.ones(50_000_000, dtype=np.float32)
    target = np.empty_like(source)

    def copy_piece(start, stop, block):
        np.copyto(target[start:stop], source[start:stop])

    copy = min(time_it(lambda: fused_threads.parallel(copy_piece, source.size), 1, 1) for _ in range(5))
    return {"matmul_gflops": 2 * 2048**3 / matmul / 1e9, "copy_gbs": 2 * source.nbytes / copy / 1e9}


def describe(task: str, seconds: float, matmul: float, copy: float) -> tuple[str, str, str]:
    """(row label, lamb-edu's rate, its share of the floor) of a CPU task that lamb-edu ran in ``seconds``."""
    kind, what = task.split(" ")
    if kind == "mlp":
        rate = mlp_flops(int(what)) / seconds / 1e9
        return f"MLP step, batch {what} (fwd + CE + bwd + LAMB)", f"{rate:.0f} GFLOP/s", f"{rate / matmul:.0%}"
    if kind == "cnn":
        return f"CNN training ({'4 batches of 32' if what == 'tiny' else 'one epoch, 60000 examples, batch 512'}): " \
               "fwd + CE + bwd + LAMB", "-", "-"
    count = parameter_count(what)
    rate = BYTES_PER_PARAMETER * count / seconds / 1e9
    return f"{OPTIMIZER_NAMES[kind]} step, {count / 1e6:.2f}M params", f"{rate:.1f} GB/s", f"{rate / copy:.0%}"
