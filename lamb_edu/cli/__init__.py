"""The ``lamb-edu`` command line (also ``python -m lamb_edu``): ``train``, ``plot``, ``reproduce``, ``sweep``, ``fill``.

Each sub-command lives in its own module and adds itself with ``add_<name>_command(subparsers)``,
setting ``handler`` to the function that runs it. ``main`` turns every error into one line on stderr
and an exit code, never a traceback: 2 for a bad flag or value (as argparse does), 1 for anything
that goes wrong while running (missing or damaged files, no GPU), 130 for Ctrl-C. A
``LAMB_EDU_BACKEND`` that cannot be used is a bad value (2) unless ``--backend`` is given.
``LAMB_EDU_DEBUG=1`` shows the traceback of an unexpected error instead. Flags are never abbreviated
(``--lr`` is not ``--lrs``).

The modules import one way, from the bottom up: ``values`` (the error and the value types),
``registry``, ``settings``, ``run_setup`` (checking a run before it writes), ``output`` and
``figures`` (what is printed and drawn), ``train_run``, ``train_parallel``, then the commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import lamb_edu
from lamb_edu import backend
from lamb_edu.cli.fill_command import add_fill_command
from lamb_edu.cli.plot_command import add_plot_command
from lamb_edu.cli.registry import MODELS, OPTIMIZERS, build_model, build_optimizer
from lamb_edu.cli.reproduce_command import add_reproduce_command
from lamb_edu.cli.settings import train_settings
from lamb_edu.cli.sweep_command import add_sweep_command
from lamb_edu.cli.train_command import add_train_command
from lamb_edu.cli.values import CommandError

__all__ = ["main", "build_parser", "CommandError", "OPTIMIZERS", "MODELS", "train_settings", "build_optimizer",
           "build_model"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="lamb-edu", description="Deep-learning optimizers from scratch, centred "
                                                                  "on LAMB.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"lamb-edu {lamb_edu.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train_command(subparsers)
    add_plot_command(subparsers)
    add_reproduce_command(subparsers)
    add_sweep_command(subparsers)
    add_fill_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 bad flags, 1 other errors, 130 Ctrl-C, 0 success)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    problem = backend.environment_problem()  # a bad LAMB_EDU_BACKEND, unless --backend says otherwise
    if problem is not None and not any(arg == "--backend" or arg.startswith("--backend=") for arg in argv):
        return _fail(args.command, problem + (" Or pass --backend numpy." if hasattr(args, "backend") else ""), 2)
    try:
        return args.handler(args)
    except CommandError as error:
        return _fail(args.command, str(error), error.exit_code)
    except (OSError, ValueError) as error:  # missing MNIST, a damaged run or checkpoint file, an unwritable folder
        return _fail(args.command, str(error), 1)
    except KeyboardInterrupt:
        print(f"lamb-edu {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("LAMB_EDU_DEBUG"):
            raise
        return _fail(args.command, f"unexpected {type(error).__name__}: {error} (LAMB_EDU_DEBUG=1 shows where)", 1)


def _fail(command: str, message: str, code: int) -> int:
    print(f"lamb-edu {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
