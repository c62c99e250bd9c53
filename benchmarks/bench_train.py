"""Time MNIST training: seconds per epoch and per step for ``MLP([784, 256, 256, 10])``, batch 512, LAMB.

One epoch is the full training set (60,000 examples, 118 steps of 512, the last one of 96). The
script reports, on the active backend (``LAMB_EDU_BACKEND=cupy`` for the GPU):

- ``fit`` wall time per epoch (training steps plus the evaluation on the 10,000 test images), as
  ``lamb-edu train`` sees it;
- the per-step cost split into forward + loss, backward and ``optimizer.step()``, measured on the
  same batches outside ``fit``;
- with ``--threads 1 2``, the same epoch time in a fresh process per BLAS thread count (OpenBLAS
  reads ``OPENBLAS_NUM_THREADS`` when it loads, so it cannot change inside one process).

Needs the MNIST files (``LAMB_EDU_DATA`` or the cache). Usage:
``python benchmarks/bench_train.py [--epochs N] [--threads 1 2]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from lamb_edu import Tensor, backend, nn, optim
from lamb_edu.data import batches, load_mnist, prepare
from lamb_edu.train import fit

SIZES = [784, 256, 256, 10]
BATCH = 512


def time_epochs(data, epochs: int) -> list[dict]:
    """``fit`` with LAMB (lr 0.01, the article's setting) for ``epochs`` epochs; the History's epoch records."""
    model = nn.MLP(SIZES, seed=0)
    history = fit(model, optim.LAMB(model.parameters(), lr=0.01), data, epochs, BATCH, progress=False)
    return history.epochs


def time_phases(data, steps: int = 40) -> dict[str, float]:
    """Mean milliseconds per step of forward + loss, backward, and optimizer step (after 5 warm-up steps)."""
    model = nn.MLP(SIZES, seed=0)
    optimizer = optim.LAMB(model.parameters(), lr=0.01)
    x, y = prepare(data.train_images, data.train_labels)
    totals = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for index, (xb, yb) in enumerate(batches(x, y, BATCH, seed=0, epoch=0)):
        if index == steps + 5:
            break
        began = time.perf_counter()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.item()
        forward_done = time.perf_counter()
        model.zero_grad()
        loss.backward()
        backend.synchronize()
        backward_done = time.perf_counter()
        optimizer.step()
        backend.synchronize()
        step_done = time.perf_counter()
        if index >= 5:
            totals["forward"] += forward_done - began
            totals["backward"] += backward_done - forward_done
            totals["optimizer"] += step_done - backward_done
    return {phase: 1000 * seconds / steps for phase, seconds in totals.items()}


def report(epochs: list[dict], phases: dict[str, float]) -> None:
    steps_per_epoch = epochs[0]["steps"]
    print(f"backend {backend.name()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs; MLP {SIZES}, batch {BATCH}, LAMB, {steps_per_epoch} steps per epoch")
    for record in epochs:
        print(f"  epoch {record['epoch']}: {record['seconds']:.2f} s (incl. test evaluation), "
              f"{1000 * record['seconds'] / steps_per_epoch:.1f} ms per step, "
              f"test accuracy {100 * record['test_accuracy']:.2f}%")
    total = sum(phases.values())
    split = ", ".join(f"{name} {ms:.2f} ms ({100 * ms / total:.0f}%)" for name, ms in phases.items())
    print(f"  one step, measured alone: {total:.2f} ms = {split}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs to time (default: 2)")
    parser.add_argument("--threads", type=int, nargs="*", help="rerun in fresh processes with these BLAS thread counts")
    args = parser.parse_args()
    if args.threads:
        for threads in args.threads:
            environment = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
            subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs)], env=environment, check=True)
        return
    data = load_mnist()
    epochs = time_epochs(data, args.epochs)
    phases = time_phases(data)
    report(epochs, phases)


if __name__ == "__main__":
    main()
