"""Time the large-batch study: its wall clock, and where the time goes (per batch size and optimizer).

The study is 206 runs in full mode, each over the same number of training images, so its time is set
by examples, not steps. The script runs ``experiments.large_batch`` (quick mode unless ``--full``)
and prints the wall time and the summed run seconds per batch size and per optimizer, counting a run
once when the table lists it twice (a scaled lr that falls on the grid). With ``--results FILE`` it
reads the ``large_batch`` entry of a ``results.json`` instead of training (for instance
``figures/results.json``, written by ``lamb-edu reproduce large_batch --out figures/``).

Needs the MNIST files (``LAMB_EDU_DATA`` or the cache) unless ``--results`` is given. Usage:
``python benchmarks/bench_large_batch.py [--full | --results FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict


def breakdown(rows: list[dict]) -> tuple[dict[int, float], dict[str, float], int]:
    """Summed seconds per batch size and per optimizer over the distinct runs, and how many there were."""
    per_batch: dict[int, float] = defaultdict(float)
    per_optimizer: dict[str, float] = defaultdict(float)
    seen = set()
    for row in rows:
        key = (row["optimizer"], row["batch_size"], row["lr"], row["seed"])
        if key in seen:
            continue  # the same training, listed again under another lr_rule
        seen.add(key)
        per_batch[row["batch_size"]] += row["seconds"]
        per_optimizer[row["optimizer"]] += row["seconds"]
    return dict(per_batch), dict(per_optimizer), len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="the full study (about 22 minutes on 2 cores)")
    mode.add_argument("--results", help="read a results.json instead of training")
    args = parser.parse_args()
    if args.results:
        with open(args.results, encoding="utf-8") as handle:
            summary = json.load(handle)["large_batch"]
        wall, source = summary["seconds"], args.results
    else:
        from lamb_edu import experiments  # noqa: PLC0415

        started = time.perf_counter()
        summary = experiments.large_batch(quick=not args.full, progress=True).summary()
        wall, source = time.perf_counter() - started, "this run"
    per_batch, per_optimizer, runs = breakdown(summary["runs"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} (here; {source})")
    print(f"{'full' if not summary['quick'] else 'quick'} study: {runs} runs, {wall:.0f} s wall "
          f"({wall / 60:.1f} minutes); the runs themselves {sum(per_batch.values()):.0f} s")
    steps = {row["batch_size"]: row["steps"] for row in summary["runs"]}
    for batch, seconds in sorted(per_batch.items()):
        print(f"  batch {batch:6d} ({steps[batch]:5d} steps a run): {seconds:6.0f} s")
    for name, seconds in per_optimizer.items():
        print(f"  {name:8s} {seconds:6.0f} s")


if __name__ == "__main__":
    main()
