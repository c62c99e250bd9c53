"""``lamb-edu sweep``: one optimizer over a grid of batch sizes × learning rates; the run table and its heatmap.

Every run is ``experiments.train_at_batch``: a fixed budget in epochs, a linear warm-up over the first
``--warmup-fraction`` of the steps, then a linear decay to zero. The optimizer and model flags are
``lamb-edu train``'s (the same registry); ``--lrs`` replaces ``--lr``. The last ``--validation-size``
training images are held out: they pick the tuned lr of each batch size; the test set is only reported.
Writes ``sweep.csv`` and ``sweep.json`` (one row per run, the columns of ``batch_sweep.RUN_FIELDS``)
and ``heatmap.png`` to ``--out``, holding the folder's lock. A value repeated in the grid trains once.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import Any

import matplotlib

from lamb_edu import plots
from lamb_edu.cli.figures import save_figure
from lamb_edu.cli.registry import MODELS, build_model, build_optimizer
from lamb_edu.cli.settings import add_optimizer_arguments, check_applicable, train_settings, unique, use_backend
from lamb_edu.cli.values import (
    CommandError,
    decay_rate,
    existing_directory,
    non_negative_int,
    positive_float,
    positive_int,
)
from lamb_edu.data import load_mnist
from lamb_edu.experiments import study_data, sweep
from lamb_edu.experiments.batch_sweep import RUN_FIELDS
from lamb_edu.train.files import write_atomically, write_json
from lamb_edu.train.run_lock import RunFolderBusy, RunLock

__all__ = ["add_sweep_command", "run_sweep", "SWEEP_FILES"]

SWEEP_FILES = ("sweep.csv", "sweep.json", "heatmap.png")


def _fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1, got {text}")
    return value


def add_sweep_command(subparsers: Any) -> None:
    """``lamb-edu sweep --batch-sizes B ... --lrs LR ...`` with ``lamb-edu train``'s optimizer and model flags."""
    parser = subparsers.add_parser(
        "sweep", help="train one optimizer over a grid of batch sizes x learning rates", allow_abbrev=False,
        description="Train one optimizer at every batch size x learning rate for the same number of epochs (warm-up, "
                    "then linear decay) and write sweep.csv, sweep.json and heatmap.png to --out.")
    add_optimizer_arguments(parser, skip=("lr",))
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", required=True, metavar="B",
                        help="global batch sizes (examples per optimizer step)")
    parser.add_argument("--lrs", type=positive_float, nargs="+", required=True, metavar="LR",
                        help="peak learning rates, tried at every batch size")
    parser.add_argument("--epochs", type=positive_int, help="passes over the training set for every run (default: 5)")
    parser.add_argument("--accumulate", type=positive_int, metavar="K",
                        help="compute each batch as K micro-batches, one step per batch (default: 1)")
    parser.add_argument("--warmup-fraction", type=decay_rate, default=0.1,
                        help="linear warm-up over this fraction of each run's steps, then linear decay (default: 0.1)")
    parser.add_argument("--target", type=_fraction, default=0.95,
                        help="validation accuracy whose first step each run records (default: 0.95)")
    parser.add_argument("--model", choices=[name for name, entry in MODELS.items() if entry.task == "mnist"],
                        help="network (default: mlp)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", metavar="WIDTH", help="hidden widths, for mlp "
                                                                                        "(default: 256 256)")
    parser.add_argument("--seed", type=non_negative_int, help="seed of the weights and the shuffles (default: 0)")
    parser.add_argument("--train-size", type=positive_int,
                        help="train on the first N training images (default: all but the validation split)")
    parser.add_argument("--validation-size", type=positive_int, default=5000,
                        help="hold out the last N training images to pick the tuned lr (default: 5000)")
    parser.add_argument("--data-dir", type=existing_directory,
                        help="directory with the MNIST IDX files (else LAMB_EDU_DATA, the cache, a download)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default=None,
                        help="array backend (default: LAMB_EDU_BACKEND, else numpy)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output directory (default: "
                                                                "runs/sweep-<optimizer>-<date>-<time>)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace the sweep files already "
                                                                               "in --out")
    # `lamb-edu train` settings a sweep fixes itself: each run's batch and schedule come from the grid
    parser.set_defaults(handler=run_sweep, batch_size=None, lookahead=None, warmup_steps=None, checkpoint_every=None)


def _check_grid(args: argparse.Namespace, settings: dict[str, Any], available: int) -> int:
    """The number of training images, after checking the grid against the data (exit 2 naming the flag)."""
    if args.validation_size >= available:
        raise CommandError(f"argument --validation-size: must leave training images out of {available}, "
                           f"got {args.validation_size}", 2)
    train_size = settings["train_size"] or available - args.validation_size
    if train_size + args.validation_size > available:
        raise CommandError(f"argument --train-size: at most {available - args.validation_size} (the {available} "
                           f"training images less --validation-size {args.validation_size}), got {train_size}", 2)
    too_large = [batch for batch in args.batch_sizes if batch > train_size]
    if too_large:
        raise CommandError(f"argument --batch-sizes: {too_large[0]} is larger than the {train_size} training images", 2)
    if settings["accumulate"] > min(args.batch_sizes):
        raise CommandError(f"argument --accumulate: at most the smallest batch size ({min(args.batch_sizes)}), "
                           f"got {settings['accumulate']}", 2)
    return train_size


def _out_dir(args: argparse.Namespace, optimizer: str) -> Path:
    out = args.out if args.out is not None else Path("runs") / f"sweep-{optimizer}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise CommandError(f"argument --out: {out} exists and is not a directory", 2)
    present = [name for name in SWEEP_FILES if (out / name).exists()]
    if present and not args.overwrite:
        raise CommandError(f"argument --out: {out} already holds a sweep ({', '.join(present)}); "
                           "pass --overwrite to replace it or choose another --out", 2)
    return out


def run_sweep(args: argparse.Namespace) -> int:
    """Check everything, train the grid behind one progress bar, write the table and the heatmap."""
    check_applicable(args)
    args.batch_sizes, args.lrs = unique(args.batch_sizes), unique(args.lrs)
    settings = train_settings(args)
    out = _out_dir(args, settings["optimizer"])
    use_backend(settings["backend"])
    mnist = load_mnist(settings["data_dir"])
    train_size = _check_grid(args, settings, len(mnist.train_images))
    try:  # an optimizer setting its constructor refuses, found before anything trains
        build_optimizer({**settings, "lr": args.lrs[0]}, list(build_model(settings).named_parameters()))
    except ValueError as error:
        raise CommandError(str(error), 2) from None
    split = study_data(mnist, train_size, args.validation_size)
    lock = RunLock(out)
    try:
        lock.acquire()
    except RunFolderBusy as error:
        raise CommandError(str(error), 1) from None
    try:
        return _sweep_and_write(args, settings, split, train_size, out)
    finally:
        lock.release()


def _sweep_and_write(args: argparse.Namespace, settings: dict[str, Any], split: Any, train_size: int, out: Path) -> int:
    """Train the grid behind one progress bar, then write the table and the heatmap."""
    runs = sweep(lambda seed: build_model({**settings, "seed": seed}),
                 lambda parameters, lr: build_optimizer({**settings, "lr": lr}, list(parameters)), split,
                 optimizer=settings["optimizer"], batch_sizes=args.batch_sizes, lrs=args.lrs, epochs=settings["epochs"],
                 seed=settings["seed"], warmup_fraction=args.warmup_fraction, target=args.target,
                 accumulate=settings["accumulate"], progress=True)
    settings.update(lr=None, batch_size=None, train_size=train_size, validation_size=args.validation_size,
                    batch_sizes=list(args.batch_sizes), lrs=list(args.lrs), warmup_fraction=args.warmup_fraction,
                    target=args.target)
    _write(out, settings, [run.row() for run in runs])
    for run in runs:
        if run.lr_rule == "tuned":
            print(f"batch {run.batch_size}: tuned lr {run.lr:g}, validation {100 * run.validation_accuracy:.2f} %, "
                  f"test {100 * run.final_test_accuracy:.2f} %, {run.steps} steps")
    print(f"wrote {out / 'sweep.csv'}, {out / 'sweep.json'} and {out / 'heatmap.png'} ({len(runs)} runs)")
    return 0


def _write(out: Path, settings: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``sweep.csv``, ``sweep.json`` and ``heatmap.png``, each written atomically."""
    matplotlib.use("Agg")  # files only, never a window
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=RUN_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(out / "sweep.csv", lambda handle: handle.write(table.getvalue().encode("utf-8")))
    write_json(out / "sweep.json", {"settings": settings, "runs": rows}, indent=1)
    title = (f"{settings['optimizer']}: final test accuracy over peak lr x batch size (red box: tuned)\n"
             f"{settings['epochs']} epochs of {settings['train_size']} images, warm-up "
             f"{100 * settings['warmup_fraction']:g} % then linear decay")
    save_figure(plots.plot_lr_batch_heatmaps(rows, title), out / "heatmap.png", dpi=110)
