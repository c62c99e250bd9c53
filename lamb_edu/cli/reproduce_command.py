"""``lamb-edu reproduce NAME [NAME ...]|all``: run the article's experiments; write figures and ``results.json``.

``results.json`` records each experiment's mode. Quick results never replace full ones: ``--quick``
into a folder whose ``results.json`` holds full results of an experiment it would run is refused
(``--out`` elsewhere, e.g. ``figures/quick``, or ``--force``). The folder has one writer at a time
(its lock, as a run folder's).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import matplotlib

from lamb_edu import experiments, plots
from lamb_edu.cli.figures import save_figure
from lamb_edu.cli.values import CommandError, existing_directory, non_negative_int
from lamb_edu.train.files import read_json, require, write_json
from lamb_edu.train.run_lock import RunFolderBusy, RunLock

__all__ = ["add_reproduce_command", "run_reproduce", "read_results"]


def add_reproduce_command(subparsers: Any) -> None:
    """``lamb-edu reproduce NAME [NAME ...]|all [--quick] [--force] [--network N] [--seeds S ...] [--workers N]
    [--out DIR]``."""
    parser = subparsers.add_parser(
        "reproduce", help="run the article's experiments; write figures and results.json", allow_abbrev=False,
        description="Run the experiments of 'An intuitive understanding of the LAMB optimizer' and write their "
                    "figures (PNG) and numbers (results.json) to --out.",
    )
    parser.add_argument("name", choices=[*experiments.EXPERIMENTS, "all"], metavar="NAME", nargs="+",
                        help=f"one or more of: {', '.join(experiments.EXPERIMENTS)}, or all (run in one process, "
                             "so experiments that share runs train them once)")
    parser.add_argument("--quick", action="store_true",
                        help="small subsets and few steps (about a minute in all), as CI and the notebooks' quick mode")
    parser.add_argument("--force", action="store_true",
                        help="with --quick, replace full results in --out (by default they are kept and --quick "
                             "refused)")
    parser.add_argument("--out", type=Path, default=Path("figures"), metavar="DIR", help="output directory "
                                                                                         "(default: figures)")
    parser.add_argument("--network", choices=("mlp", "cnn"), default=None,
                        help="the network of the MNIST experiments 3 to 6 (default: cnn in full mode, mlp in quick)")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, metavar="S",
                        help="the seeds of the MNIST experiments (default: 0 1 2 in full mode, 0 in quick; "
                             "experiment 3 takes the first)")
    parser.add_argument("--workers", type=non_negative_int, default=None, metavar="N",
                        help="processes that train the large-batch study's runs, one thread each (default: one per "
                             "core, at most 4; 0: one after another in this process)")
    parser.add_argument("--data-dir", type=existing_directory, default=None, metavar="DIR",
                        help="folder with the MNIST files")
    parser.set_defaults(handler=run_reproduce)


def read_results(path: Path) -> dict[str, Any]:
    """The ``results.json`` to merge into: {} when absent; RunFileError naming it when not an object of objects."""
    if not path.exists():
        return {}
    results = read_json(path)
    require(isinstance(results, dict), path, "must hold a JSON object (experiment name to its results)")
    for name, entry in results.items():
        require(isinstance(entry, dict), path, f"the entry {name!r} must be an object")
    return results


def _check_modes(results: dict[str, Any], names: list[str], args: argparse.Namespace, path: Path) -> None:
    """Refuse (exit 2) quick results that would replace full ones, unless ``--force``."""
    full = [name for name in names if results.get(name, {}).get("mode") == "full"]
    if args.quick and full and not args.force:
        raise CommandError(f"argument --quick: {path} holds the full results of {', '.join(full)}; quick results "
                           f"would replace them: choose another --out (e.g. {args.out / 'quick'}) or pass --force", 2)


def run_reproduce(args: argparse.Namespace) -> int:
    """Check ``results.json`` first, then run each experiment, save its figures and merge its numbers after each."""
    matplotlib.use("Agg")  # files only, never a window
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"argument --out: {args.out} exists and is not a directory", 2)
    results_path = args.out / "results.json"
    names = list(experiments.EXPERIMENTS) if "all" in args.name else list(dict.fromkeys(args.name))
    _check_modes(read_results(results_path), names, args, results_path)  # before running anything
    lock = RunLock(args.out)
    try:
        lock.acquire()
    except RunFolderBusy as error:
        raise CommandError(str(error), 1) from None
    try:
        return _reproduce(args, names, results_path)
    finally:
        lock.release()


def _reproduce(args: argparse.Namespace, names: list[str], results_path: Path) -> int:
    results = read_results(results_path)  # again, now that this process is the folder's only writer
    _check_modes(results, names, args, results_path)
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        result = experiments.run_experiment(name, quick=args.quick, data_dir=args.data_dir, progress=True,
                                            network=args.network, seeds=args.seeds, workers=args.workers)
        figures = plots.experiment_figures(name, result)
        for filename, figure in figures.items():
            save_figure(figure, args.out / filename, dpi=110)
        results[name] = {"mode": mode, **result.summary()}
        write_json(results_path, results, indent=1, sort_keys=True)
        print(f"{name}: {', '.join(figures)} ({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"reproduced {len(names)} experiment(s) in {mode} mode in {time.perf_counter() - started:.0f} s; "
          f"wrote {args.out}", flush=True)
    return 0
