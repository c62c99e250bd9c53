"""The work ``bench_vs_torch.py --gpu`` times: lamb-edu on CuPy, PyTorch CUDA, timm's Lamb on CUDA.

Task names: ``<opt> 25M`` (one optimizer step on 25.2M float32 parameters, opt in lamb, adam, adamw),
``epoch 512`` (one MNIST-sized epoch of the MLP with LAMB: 60000 random examples, batch 512) and, for
lamb-edu only, ``floors copy`` (the device's copy bandwidth in GB/s, read + write).
"""

from __future__ import annotations

import numpy as np
from harness import gpu_time
from torch_lamb import lamb_stepper
from vs_torch_tasks import BIG_SHAPES, HYPER, SIZES, torch_mlp

EXAMPLES, BATCH = 60000, 512


def lamb_edu_gpu_task(task: str, steps: int, warmup: int) -> float:
    """Seconds (median) of ``task`` in lamb-edu on the CuPy backend, or the copy bandwidth for ``floors copy``."""
    import cupy

    from lamb_edu import Tensor, backend, nn, optim

    backend.use("cupy")
    synchronize = cupy.cuda.Device().synchronize
    rng = np.random.default_rng(0)
    kind = task.split(" ")[0]
    if task == "floors copy":
        source = cupy.ones(100_000_000, dtype=cupy.float32)
        target = cupy.empty_like(source)
        return 2 * source.nbytes / gpu_time(lambda: cupy.copyto(target, source), synchronize, 20, 3) / 1e9
    if kind == "epoch":
        model = nn.MLP(SIZES, seed=0)
        optimizer = optim.LAMB(model.parameters(), **HYPER)
        x = cupy.asarray(rng.normal(size=(EXAMPLES, SIZES[0])).astype(np.float32))
        y = cupy.asarray(rng.integers(0, SIZES[-1], size=EXAMPLES))

        def epoch():
            for begin in range(0, EXAMPLES, BATCH):
                optimizer.zero_grad()
                nn.cross_entropy(model(Tensor(x[begin:begin + BATCH])), y[begin:begin + BATCH]).backward()
                optimizer.step()

        return gpu_time(epoch, synchronize, steps, warmup)
    params = [Tensor(cupy.asarray(rng.normal(size=s).astype(np.float32) * 0.05), requires_grad=True)
              for s in BIG_SHAPES]
    for p in params:
        p.grad = cupy.asarray(rng.normal(size=p.shape).astype(np.float32))
    make = {"lamb": optim.LAMB, "adamw": optim.AdamW, "adam": optim.Adam}[kind]
    optimizer = make(params, lr=HYPER["lr"], weight_decay=0.0 if kind == "adam" else HYPER["weight_decay"])
    return gpu_time(optimizer.step, synchronize, steps, warmup)


def torch_gpu_task(task: str, steps: int, warmup: int, library: str = "torch") -> float:
    """Seconds (median) of ``task`` in PyTorch CUDA, its LAMB being ``library``'s ("torch" or "timm")."""
    import torch

    device = torch.device("cuda")
    synchronize = torch.cuda.synchronize
    kind = task.split(" ")[0]
    if kind == "epoch":
        model = torch_mlp().to(device)
        lamb_step = lamb_stepper(library, list(model.parameters()), **HYPER)
        x = torch.randn(EXAMPLES, SIZES[0], device=device)
        y = torch.randint(0, SIZES[-1], (EXAMPLES,), device=device)

        def epoch():
            for begin in range(0, EXAMPLES, BATCH):
                model.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x[begin:begin + BATCH]), y[begin:begin + BATCH]).backward()
                lamb_step()

        return gpu_time(epoch, synchronize, steps, warmup)
    params = [(torch.randn(*s, device=device) * 0.05).requires_grad_() for s in BIG_SHAPES]
    for p in params:
        p.grad = torch.randn(*p.shape, device=device)
    if kind == "lamb":
        return gpu_time(lamb_stepper(library, params, **HYPER), synchronize, steps, warmup)
    make = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    optimizer = make(params, lr=HYPER["lr"], weight_decay=0.0 if kind == "adam" else HYPER["weight_decay"],
                     foreach=True)
    return gpu_time(optimizer.step, synchronize, steps, warmup)


def torch_cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
