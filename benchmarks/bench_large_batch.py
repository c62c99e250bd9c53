"""Time the large-batch study: its wall clock, and where the time goes (per batch size and optimizer).

In full mode the study is the lr grid (206 runs), the quasi-random protocol (40 runs at batch 16 384)
and the steps-to-target measure (up to 48 runs, most stopped early at the target); every full run sees
the same number of training images, so its time is set by examples, not steps. The script runs
``experiments.large_batch`` (quick mode unless ``--full``)
and prints the wall time and the summed run seconds per batch size and per optimizer, counting a run
once when the table lists it twice (a scaled lr that falls on the grid). With ``--results FILE`` it
reads the ``large_batch`` entry of a ``results.json`` instead of training (for instance
``figures/results.json``, written by ``lamb-edu reproduce large_batch --out figures/``).

With ``--reuse FILE`` the runs of that ``results.json``'s ``large_batch`` entry are not trained again
(a seeded run is deterministic; the script first trains one of them again, the fastest, and stops if it
differs), ``--journal FILE`` appends every run as it finishes (an interrupted study resumes from it),
and ``--save FILE`` writes the study's summary (the ``large_batch`` entry of a ``results.json``).

Needs the MNIST files (``LAMB_EDU_DATA`` or the cache) unless ``--results`` is given. Usage:
``python benchmarks/bench_large_batch.py [--full [--reuse FILE] [--journal FILE] [--save FILE] | --results FILE]``.
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


def _known_runs(path: str) -> list:
    """The stored runs of ``path``, after training the fastest of them again and checking it is the same."""
    from lamb_edu import data, nn  # noqa: PLC0415
    from lamb_edu.experiments.batch_run import BatchRun  # noqa: PLC0415
    from lamb_edu.experiments.batch_sweep import study_data, train_at_batch  # noqa: PLC0415
    from lamb_edu.experiments.large_batch_result import LargeBatchResult  # noqa: PLC0415

    with open(path, encoding="utf-8") as handle:
        stored = LargeBatchResult.from_summary(json.load(handle)["large_batch"])
    runs: list[BatchRun] = stored.runs
    check = min((run for run in runs if run.protocol == "lr_grid"), key=lambda run: run.seconds)
    s = stored.settings
    test_size = None if s.test_size == 10000 else s.test_size
    split = study_data(data.load_mnist(), s.train_size, s.validation_size, test_size, s.curve_size)
    optimizer = next(o for o in s.optimizers if o.name == check.optimizer)
    again = train_at_batch(lambda seed: nn.MLP([784, *s.hidden, 10], seed=seed), optimizer.make, split,
                           optimizer=check.optimizer, batch_size=check.batch_size, lr=check.lr, epochs=s.epochs,
                           seed=check.seed, warmup_fraction=s.warmup_fraction, target=s.target)
    same = (again.final_test_accuracy, again.validation_accuracy, again.steps_to_target) == \
        (check.final_test_accuracy, check.validation_accuracy, check.steps_to_target)
    print(f"reuse check: {check.optimizer} batch {check.batch_size} lr {check.lr:g} seed {check.seed}: stored "
          f"{check.final_test_accuracy:.4f}/{check.validation_accuracy:.4f}, again {again.final_test_accuracy:.4f}/"
          f"{again.validation_accuracy:.4f} in {again.seconds:.0f} s: {'same' if same else 'DIFFERENT'}", flush=True)
    if not same:
        raise SystemExit("the stored runs are not reproduced by this code: train them again (drop --reuse)")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="the full study (about 38 minutes on a 2-core machine)")
    mode.add_argument("--results", help="read a results.json instead of training")
    parser.add_argument("--reuse", help="a results.json whose large_batch runs are not trained again")
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
        known = _known_runs(args.reuse) if args.reuse else []
        summary = experiments.large_batch(quick=not args.full, progress=True, known=known,
                                          journal=args.journal).summary()
        wall, source = time.perf_counter() - started, "this run"
        if args.save:
            from lamb_edu.train.files import write_json  # noqa: PLC0415

            write_json(args.save, summary, indent=1, sort_keys=True)
    per_batch, per_optimizer, runs = breakdown(summary["runs"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} (here; {source})")
    print(f"{'full' if not summary['quick'] else 'quick'} study: {runs} runs, {wall:.0f} s wall "
          f"({wall / 60:.1f} minutes); the runs themselves {sum(per_batch.values()):.0f} s")
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
