"""Time the large-batch study: its wall clock, and where the time goes (per batch size and optimizer).

In full mode the study is the lr grid (about 210 runs), the quasi-random protocol (8 trials and 2 report
runs per optimizer and batch size: 200 runs) and the steps-to-target measure (up to 64 runs, most stopped
early at the target); every full run sees the same number of training images, so its time is set by
examples, not steps. The script runs ``experiments.large_batch`` (quick mode unless ``--full``) on
``--workers`` processes (default: one per core; 0: one after another in this process)
and prints the wall time and the summed run seconds per batch size and per optimizer, counting a run
once when the table lists it twice (a scaled lr that falls on the grid). With ``--results FILE`` it
reads the ``large_batch`` entry of a ``results.json`` instead of training (for instance
``figures/results.json``, written by ``lamb-edu reproduce large_batch --out figures/``).

``--journal FILE`` appends every run as it finishes (an interrupted study resumes from it), and
``--save FILE`` writes the study's summary (the ``large_batch`` entry of a ``results.json``).

Needs the MNIST files (``LAMB_EDU_DATA`` or the cache) unless ``--results`` is given. Usage:
``python benchmarks/bench_large_batch.py [--full [--workers N] [--journal FILE] [--save FILE] | --results FILE]``.
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
        key = (row["optimizer"], row["batch_size"], row["lr"], row["seed"], json.dumps(row.get("settings") or {},
                                                                                     sort_keys=True))
        if key in seen:
            continue  # the same training, listed again under another lr_rule
        seen.add(key)
        per_batch[row["batch_size"]] += row["seconds"]
        per_optimizer[row["optimizer"]] += row["seconds"]
    return dict(per_batch), dict(per_optimizer), len(seen)


def per_protocol(rows: list[dict]) -> dict[str, float]:
    """Summed seconds per protocol over the distinct runs (an old table's rows are all lr grid)."""
    seconds: dict[str, float] = defaultdict(float)
    seen = set()
    for row in rows:
        key = (row["optimizer"], row["batch_size"], row["lr"], row["seed"], json.dumps(row.get("settings") or {},
                                                                                     sort_keys=True))
        if key not in seen:
            seen.add(key)
            seconds[row.get("protocol", "lr_grid")] += row["seconds"]
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="the full study (about 25 minutes on a 2-core machine)")
    mode.add_argument("--results", help="read a results.json instead of training")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--journal", help="append every run to this file; resume from it")
    parser.add_argument("--save", help="write the study's summary (JSON) here")
    args = parser.parse_args()
    if args.results:
        with open(args.results, encoding="utf-8") as handle:
            summary = json.load(handle)["large_batch"]
        wall, source = summary["seconds"], args.results
    else:
        from lamb_edu import experiments  # noqa: PLC0415

        started = time.perf_counter()
        summary = experiments.large_batch(quick=not args.full, progress=True, journal=args.journal,
                                          workers=args.workers).summary()
        wall, source = time.perf_counter() - started, "this run"
        if args.save:
            from lamb_edu.train.files import write_json  # noqa: PLC0415

            write_json(args.save, summary, indent=1, sort_keys=True)
    per_batch, per_optimizer, runs = breakdown(summary["runs"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} (here; {source})")
    print(f"{'full' if not summary['quick'] else 'quick'} study: {runs} runs on {summary.get('workers', 0)} worker "
          f"process(es), {wall:.0f} s wall ({wall / 60:.1f} minutes); the runs themselves "
          f"{sum(per_batch.values()):.0f} s")
    # a full run's steps (the lr grid's; a steps-to-target run stops early)
    steps = {row["batch_size"]: row["steps"] for row in summary["runs"] if row.get("protocol", "lr_grid") == "lr_grid"}
    for batch, seconds in sorted(per_batch.items()):
        print(f"  batch {batch:6d} ({steps[batch]:5d} steps a run): {seconds:6.0f} s")
    for name, seconds in per_optimizer.items():
        print(f"  {name:8s} {seconds:6.0f} s")
    for protocol, seconds in per_protocol(summary["runs"]).items():
        print(f"  {protocol:16s} {seconds:6.0f} s")


if __name__ == "__main__":
    main()
