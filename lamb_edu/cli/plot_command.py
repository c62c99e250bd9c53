"""``lamb-edu plot``: overlay the curves of several finished ``lamb-edu train`` runs in one figure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from lamb_edu import plots
from lamb_edu.cli.figures import save_figure
from lamb_edu.cli.values import CommandError
from lamb_edu.train.run_folder import read_run

__all__ = ["add_plot_command", "run_plot"]


def add_plot_command(subparsers: Any) -> None:
    """``lamb-edu plot DIR... [--out FILE]``."""
    parser = subparsers.add_parser("plot", help="overlay the curves of several runs", allow_abbrev=False,
                                   description="Overlay training loss and test accuracy of runs written by "
                                               "`lamb-edu train`.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="DIR", help="output directories of `lamb-edu train`")
    parser.add_argument("--out", type=Path, default=Path("comparison.png"), metavar="FILE",
                        help="image to write (default: comparison.png)")
    parser.set_defaults(handler=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    """Read and check every run folder first (finished, both files of one run), then draw one figure."""
    matplotlib.use("Agg")  # files only, never a window
    image_format = args.out.suffix.lstrip(".").lower() or "png"
    if image_format not in Figure().canvas.get_supported_filetypes():
        raise CommandError(f"argument --out: cannot write .{image_format} images (use .png, .pdf or .svg)", 2)
    runs = [read_run(directory) for directory in args.runs]  # errors name the file: exit 1 before drawing anything
    for run, label in zip(runs, plots.settings_labels([run["settings"] for run in runs])):
        run["label"] = label
    figure = plots.plot_training_curves(runs, title="MNIST runs")
    if args.out.parent != Path(""):
        args.out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, args.out, dpi=120, image_format=image_format)
    print(f"wrote {args.out} ({len(runs)} runs)")
    return 0
