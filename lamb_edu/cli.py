"""The ``lamb-edu`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import lamb_edu


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="lamb-edu", description="Deep-learning optimizers from scratch, centred on LAMB.")
    parser.add_argument("--version", action="version", version=f"lamb-edu {lamb_edu.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad flags, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
