"""``lamb-edu fill RUN "To be, or n_t to be"``: a trained tiny-bert run guesses each ``_`` of a line.

The run folder's summary.json gives the model's settings and its vocabulary; its checkpoint gives the
weights (the last one saved: the end of the run, or where an interrupted run stopped).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lamb_edu.cli.values import CommandError, positive_int

__all__ = ["add_fill_command", "run_fill"]


def add_fill_command(subparsers: Any) -> None:
    """``lamb-edu fill RUN TEXT [--top K]``."""
    parser = subparsers.add_parser(
        "fill", help="fill in the blanks (_) of a line with a trained tiny-bert run",
        description="Load the tiny-bert model of a run folder (lamb-edu train --model tiny-bert) and print its guess "
                    "for each _ of TEXT, with the most probable characters there.")
    parser.add_argument("run", type=Path, metavar="RUN", help="run folder of a tiny-bert run")
    parser.add_argument("text", metavar="TEXT",
                        help="a line with _ where characters are hidden, e.g. 'To be, or n_t to be'")
    parser.add_argument("--top", type=positive_int, default=3, help="guesses shown per blank (default: 3)")
    parser.set_defaults(handler=run_fill)


def _load_model(run: Path) -> tuple[Any, str]:
    """The run's model with its checkpointed weights, and its vocabulary (exit 2 for a run of another model)."""
    from lamb_edu.cli.registry import MODELS  # noqa: PLC0415
    from lamb_edu.train import read_checkpoint  # noqa: PLC0415
    from lamb_edu.train.files import require  # noqa: PLC0415
    from lamb_edu.train.run_folder import read_summary  # noqa: PLC0415

    summary = read_summary(run)
    settings = summary["settings"]
    if MODELS.get(settings.get("model", "mlp"), MODELS["mlp"]).task != "masked-lm":
        raise CommandError(f"argument RUN: {run} is a run of the {settings.get('model', 'mlp')} model; "
                           f"fill needs a tiny-bert run (lamb-edu train --model tiny-bert)", 2)
    vocabulary = summary.get("task", {}).get("vocabulary")
    require(isinstance(vocabulary, str) and len(vocabulary) > 1, run / "summary.json",
            "task.vocabulary must be the model's characters")
    from lamb_edu.cli.run_setup import build_training  # noqa: PLC0415
    from lamb_edu.cli.settings import check_saved_settings  # noqa: PLC0415

    check_saved_settings(settings, run / "summary.json")
    model, optimizer, scheduler = build_training(settings)
    model.load_state_dict(read_checkpoint(run, model, optimizer, scheduler).weights)
    return model, vocabulary


def run_fill(args: argparse.Namespace) -> int:
    """Print the filled line, then each blank's guesses with their probabilities."""
    from lamb_edu.train.fill import fill_blanks  # noqa: PLC0415

    model, vocabulary = _load_model(args.run)
    try:
        filled, blanks = fill_blanks(model, vocabulary, args.text, top=args.top)
    except ValueError as error:
        raise CommandError(f"argument TEXT: {error}", 2) from None
    print(args.text)
    print(filled)
    for blank in blanks:
        guesses = ", ".join(f"{char!r} {100 * probability:.1f}%" for char, probability in blank.guesses)
        print(f"_ at {blank.position}: {guesses}")
    return 0
