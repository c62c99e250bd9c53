"""``lamb-edu train``: train a model on its task (MNIST digits; tiny-Shakespeare characters for ``--model
tiny-bert``) with one optimizer, write its run folder, resume it.

One process: check everything (``run_setup``), take the folder's lock (one writer per run folder),
make the folder ready or check the run to resume, then train and write (``train_run``). Under
``mpiexec`` with ``--data-parallel``, ``train_parallel`` does the same on every rank.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lamb_edu.cli.registry import MODELS
from lamb_edu.cli.run_setup import build_training, prepare_run, refuse_mpi_copies, resume_point, start_new_folder
from lamb_edu.cli.settings import add_optimizer_arguments
from lamb_edu.cli.train_parallel import add_data_parallel_flags, run_data_parallel
from lamb_edu.cli.train_run import train_and_write
from lamb_edu.cli.values import CommandError, existing_directory, non_negative_int, positive_int
from lamb_edu.distributed.world import mpi_job_size
from lamb_edu.train.run_lock import RunFolderBusy, RunLock

__all__ = ["add_train_command", "run_train"]


def add_train_command(subparsers: Any) -> None:
    """``lamb-edu train``: the flags of every optimizer and model in the registry, and the run's own."""
    parser = subparsers.add_parser(
        "train", help="train a model on MNIST (or tiny Shakespeare) with one optimizer", allow_abbrev=False,
        description="Train on MNIST (--model tiny-bert: a masked-character model of tiny Shakespeare) and write "
                    "summary.json, metrics.jsonl, trust.npz, curves.png and a checkpoint "
                    "to --out. Ctrl-C stops after the current step and saves a checkpoint; --resume DIR continues.",
        epilog="Defaults follow the article's runs and the PyTorch defaults: LAMB lr 0.01, betas 0.9/0.999, eps 1e-6 "
               "(the pytorch-lamb code the article used); LARS momentum 0.9 (trust coefficient 0.001, so its lr is "
               "large); AdamW weight decay 0.01, others 0.")
    add_optimizer_arguments(parser)
    parser.add_argument("--lookahead", type=positive_int, metavar="K", help="wrap the optimizer in Lookahead with "
                                                                            "k=K, alpha=0.5")
    parser.add_argument("--warmup-steps", type=non_negative_int,
                        help="linear warm-up: step s (from 0) uses lr·(s+1)/N for the first N steps (default: 0, none)")
    parser.add_argument("--model", choices=list(MODELS),
                        help="network: " + "; ".join(f"{name}: {entry.description}" for name, entry in MODELS.items())
                        + " (default: mlp)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", metavar="WIDTH",
                        help="hidden layer widths, for mlp (default: 256 256)")
    add_tiny_bert_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, help="examples per optimizer step, the global batch "
                                                                "(default: 512)")
    parser.add_argument("--accumulate", type=positive_int, metavar="K",
                        help="compute each batch as K micro-batches and average their gradients into one step "
                             "(default: 1)")
    parser.add_argument("--epochs", type=positive_int, help="passes over the training set (default: 5)")
    parser.add_argument("--seed", type=non_negative_int, help="seed of the weights and the shuffles (default: 0)")
    parser.add_argument("--train-size", type=positive_int, help="use only the first N training examples (default: "
                                                                "all 60000; tiny-bert: windows, all)")
    parser.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                        help="also save a checkpoint every N steps (one is always saved at each epoch's end and "
                             "on Ctrl-C)")
    parser.add_argument("--data-dir", type=existing_directory,
                        help="directory with the MNIST IDX files or tiny-bert's input.txt (else LAMB_EDU_DATA, "
                             "the cache, a download)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default=None,
                        help="array backend (default: LAMB_EDU_BACKEND, else numpy)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory, which must be empty (default: "
                             "runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="delete the run already in --out (only the files a run writes) and start again")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the interrupted run in DIR from its checkpoint, with its settings")
    add_data_parallel_flags(parser)
    # flag_default: what "not given" is for each flag, so that --resume can refuse the run flags it was given
    parser.set_defaults(handler=run_train, flag_default=parser.get_default)


def add_tiny_bert_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of ``--model tiny-bert``: ``--context``, ``--d-model``, ``--layers``, ``--heads``."""
    defaults = MODELS["tiny-bert"].defaults
    for setting, stem in (("context", "characters per window"), ("d_model", "width of the model"),
                          ("layers", "encoder layers"), ("heads", "attention heads (must divide --d-model)")):
        parser.add_argument("--" + setting.replace("_", "-"), type=positive_int,
                            help=f"{stem}, for tiny-bert (default: {defaults[setting]})")


def run_train(args: argparse.Namespace) -> int:
    """Check everything, hold the folder's lock, train, print one line per epoch, write the run folder."""
    if args.data_parallel or args.shard_optimizer or mpi_job_size() > 1:  # every rank of an MPI job must agree
        return run_data_parallel(args)
    refuse_mpi_copies(args)
    run = prepare_run(args)
    model, optimizer, scheduler = build_training(run.settings)
    try:
        lock = RunLock(run.out)
        lock.acquire()
    except RunFolderBusy as error:
        raise CommandError(str(error), 1) from None
    try:
        if run.resuming:
            start = resume_point(run, model, optimizer, scheduler)
        else:
            start = start_new_folder(run.out, bool(args.overwrite))
        return train_and_write(run, start, model, optimizer, scheduler)
    finally:
        lock.release()
