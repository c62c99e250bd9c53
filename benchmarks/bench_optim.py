"""Time one step of each optimizer and report microseconds per step and GB/s moved.

Two parameter sets: the parameters of ``MLP([784, 256, 256, 10])`` (269,322 numbers in six
tensors) and a 25M-parameter set of five 5M tensors. Parameters, gradients and state are float32 on
the active backend (``LAMB_EDU_BACKEND=cupy`` for the GPU).

GB/s counts the bytes an ideal, fused implementation must read and write per step (4 bytes per
number), so it can be compared with the machine's memory bandwidth (printed first, from a plain
array copy). Per parameter number, with w the weights, g the gradient and the optimizer's state:

    SGD (no momentum)   read w, g                        write w           3 arrays
    SGD (momentum)      read w, g, b                     write w, b        5
    Adagrad             read w, g, G                     write w, G        5
    RMSprop             read w, g, v                     write w, v        5
    Adam, AdamW         read w, g, m, v                  write w, m, v     7
    LARS                read w, g, v, and w, g for norms write w, v        7
    LAMB                read w, g, m, v, w for ‖w‖,      write w, m, v,   11
                        u twice (for ‖u‖, for the step)  and u
    Lookahead(Adam, k)  Adam's 7, plus (read w, φ; write w, φ) every k steps: 7 + 4/k

The library's NumPy code makes several passes (one ufunc per operation, temporaries in a scratch
buffer), so it moves more bytes than this; the ratio to the copy bandwidth shows how far it is from
an ideal fused kernel.

Usage: ``python benchmarks/bench_optim.py [--repeats N] [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lamb_edu import Tensor, backend, nn, optim
from lamb_edu.backend import xp

BYTES_PER_NUMBER = 4
LOOKAHEAD_K = 5
OPTIMIZERS = {  # name: (factory, arrays moved per parameter number per step)
    "SGD": (lambda p: optim.SGD(p, lr=0.01), 3),
    "SGD momentum": (lambda p: optim.SGD(p, lr=0.01, momentum=0.9), 5),
    "Adagrad": (lambda p: optim.Adagrad(p, lr=0.01), 5),
    "RMSprop": (lambda p: optim.RMSprop(p, lr=0.01), 5),
    "Adam": (lambda p: optim.Adam(p, lr=1e-3), 7),
    "AdamW": (lambda p: optim.AdamW(p, lr=1e-3), 7),
    "LARS": (lambda p: optim.LARS(p, lr=0.1), 7),
    "LAMB": (lambda p: optim.LAMB(p, lr=1e-3, weight_decay=0.01), 11),
    "Lookahead(Adam)": (lambda p: optim.Lookahead(optim.Adam(p, lr=1e-3), k=LOOKAHEAD_K), 7 + 4 / LOOKAHEAD_K),
}


def parameter_sets(quick: bool) -> dict[str, list[tuple[int, ...]]]:
    mlp = [p.shape for p in nn.MLP([784, 256, 256, 10], seed=0).parameters()]
    large = [(5_000_000,)] * (1 if quick else 5)
    return {"MLP 784-256-256-10": mlp, f"{len(large) * 5}M params": large}


def make_parameters(shapes: list[tuple[int, ...]]) -> list[Tensor]:
    rng = np.random.default_rng(0)
    params = []
    for shape in shapes:
        p = Tensor(backend.asarray(rng.standard_normal(shape, dtype=np.float32) * 0.1), requires_grad=True)
        p.grad = backend.asarray(rng.standard_normal(shape, dtype=np.float32) * 0.01)
        params.append(p)
    return params


def time_steps(step, repeats: int) -> float:
    """Median seconds per call of ``step`` (after two warm-up calls, which also create the state)."""
    step()
    step()
    backend.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def copy_bandwidth(numbers: int, repeats: int) -> float:
    source, target = xp.ones(numbers, dtype=xp.float32), xp.empty(numbers, dtype=xp.float32)
    seconds = time_steps(lambda: xp.copyto(target, source), repeats)
    return 2 * numbers * BYTES_PER_NUMBER / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per optimizer (median reported)")
    parser.add_argument("--quick", action="store_true", help="a 5M instead of a 25M large set, 3 repeats")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    repeats = 3 if args.quick else args.repeats
    print(f"backend: {backend.name()}, float32, median of {repeats} steps")
    print(f"array copy: {copy_bandwidth(5_000_000, repeats):.1f} GB/s (read + write)")
    for set_name, shapes in parameter_sets(args.quick).items():
        numbers = sum(int(np.prod(shape)) for shape in shapes)
        print(f"\n{set_name}: {numbers:,} parameters in {len(shapes)} tensors")
        print(f"  {'optimizer':<18}{'us/step':>12}{'GB/s':>9}")
        for name, (make, arrays) in OPTIMIZERS.items():
            params = make_parameters(shapes)
            optimizer = make(params)
            seconds = time_steps(optimizer.step, repeats)
            gigabytes = arrays * numbers * BYTES_PER_NUMBER / 1e9
            print(f"  {name:<18}{seconds * 1e6:>12,.0f}{gigabytes / seconds:>9.1f}")
            del optimizer, params


if __name__ == "__main__":
    main()
