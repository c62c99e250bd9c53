"""``lamb-edu train --data-parallel``: one run on the ranks of an MPI job (``mpiexec -n N lamb-edu train ...``).

Every rank reads the settings and the data and builds the model; rank 0's weights are broadcast; rank
r computes slice r of every global batch (``--batch-size`` is the global batch, shuffled alike on every
rank); one all-reduce sums the gradients and every rank takes the same step. Only rank 0 prints and
writes the run folder, holding its lock. Every rank reads and checks the checkpoint it resumes, whatever the
world size that wrote it.

No rank may be left waiting in a collective:

- Setting up (flags, data, model, the checkpoint to resume, the output folder) calls no collective:
  every rank tries, then one small all-reduce of exit codes tells everyone who failed. An error all
  ranks hit alike (a bad flag) is printed once, by rank 0; one that only some hit is printed by them,
  tagged with the rank; every rank then exits with that code. The same all-reduce checks that every
  rank was started with the same settings.
- Once training has started, a rank that fails alone prints its error and calls ``MPI_Abort``, which
  ends every rank within seconds. A loss or gradient that is not finite on some ranks is seen by all
  in the step's status all-reduce (``RankFailure``): they stop together, rank 0 printing its message.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any, Callable, NamedTuple

from lamb_edu import backend
from lamb_edu.cli.run_setup import (
    ResumePoint,
    Run,
    build_training,
    prepare_run,
    refuse_mpi_copies,
    resume_point,
    start_new_folder,
)
from lamb_edu.cli.train_run import fit_run, train_and_write
from lamb_edu.cli.values import CommandError
from lamb_edu.distributed import DataParallel, RankFailure, ShardedOptimizer, get_world, sharding_rule
from lamb_edu.distributed.data_parallel import DEFAULT_BUCKET_MB
from lamb_edu.train import DataParallelWorkers
from lamb_edu.train.run_lock import RunFolderBusy, RunLock, folder_state

__all__ = ["add_data_parallel_flags", "run_data_parallel"]

# Settings that may differ between ranks (each machine may keep the data elsewhere).
LOCAL_SETTINGS = ("data_dir",)


class _Setup(NamedTuple):
    run: Run
    model: Any
    optimizer: Any
    scheduler: Any
    start: ResumePoint | None
    folder: tuple = ()  # what a resumed run folder held before it was read (run_lock.folder_state)


def add_data_parallel_flags(parser: argparse.ArgumentParser) -> None:
    """``--data-parallel`` and ``--shard-optimizer``."""
    group = parser.add_argument_group("data-parallel training (run under mpiexec -n N)")
    group.add_argument("--data-parallel", action="store_true",
                       help="share every global batch over the N ranks of the MPI job: rank r computes slice r and "
                            "one all-reduce sums the gradients (N must divide --batch-size; without mpiexec, N = 1)")
    group.add_argument("--shard-optimizer", action="store_true",
                       help="with --data-parallel, ZeRO stage 1: each rank keeps the optimizer state (m, v) only "
                            "for its 1/N of the parameters (lamb, lars, adam, adamw)")
    group.add_argument("--bucket-mb", type=_bucket_mb, default="auto", metavar="MB",
                       help="gradient bucket size: each bucket is sent as soon as backward has finished it "
                            f"(0: one bucket, sent after backward; default auto: {DEFAULT_BUCKET_MB} with two cores "
                            "per rank, else one bucket)")


def _bucket_mb(text: str) -> float | str | None:
    """``--bucket-mb``: "auto" or a finite number of megabytes >= 0; 0 means one bucket (None)."""
    if text == "auto":
        return text
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 'auto' or a finite number >= 0, got {text!r}")
    return value or None


def run_data_parallel(args: argparse.Namespace) -> int:
    """Set up on every rank, agree that all succeeded, then train; rank 0 alone locks and writes the run folder.

    Also run for every ``train`` under an MPI launcher, so that a rank started without
    ``--data-parallel`` takes part in the agreement (and is refused) instead of leaving the others waiting.
    """
    world = get_world()
    setup = _agreed(world, lambda: _set_up(args, world.size), lambda done: _settings_digest(done, args))
    if isinstance(setup, int):
        return setup
    lock = RunLock(setup.run.out)
    start = _agreed(world, lambda: _claim(lock, args, setup) if world.is_root else setup.start)
    if isinstance(start, int):
        return start
    try:
        return _train(world, args, setup._replace(start=start))
    finally:
        lock.release()


def _claim(lock: RunLock, args: argparse.Namespace, setup: _Setup) -> ResumePoint:
    """Rank 0: take the folder's lock, then make it ready for a new run (a resumed one was checked already)."""
    try:
        lock.acquire()
    except RunFolderBusy as error:
        raise CommandError(str(error), 1) from None
    try:
        if setup.run.resuming and folder_state(setup.run.out) != setup.folder:
            # every rank read the folder before rank 0 could lock it: another writer finished in between
            raise CommandError(f"argument --resume: {setup.run.out} changed while this job was starting (another "
                               "process wrote it); start the job again", 1)
        return setup.start if setup.run.resuming else start_new_folder(setup.run.out, args.overwrite)
    except BaseException:
        lock.release()
        raise


def _set_up(args: argparse.Namespace, ranks: int) -> _Setup:
    """What one process would set up, plus the checks of a world of ``ranks``; no collective, nothing written."""
    if not args.data_parallel:  # a rank started without it joins the agreement only to be refused
        if args.shard_optimizer:
            raise CommandError("argument --shard-optimizer: needs --data-parallel", 2)
        refuse_mpi_copies(args)
        raise CommandError(f"argument --data-parallel: every rank of an MPI job of {ranks} needs it", 2)
    folder = folder_state(args.resume) if args.resume is not None else ()  # before anything in it is read
    run = prepare_run(args)
    batch, accumulate = run.settings["batch_size"], run.settings["accumulate"]
    if batch % ranks:
        raise CommandError(f"argument --batch-size: a global batch of {batch} cannot be split evenly over {ranks} "
                           f"ranks; choose a multiple of {ranks}", 2)
    if accumulate > batch // ranks:
        raise CommandError(f"argument --accumulate: at most the {batch // ranks} examples of each rank's slice, "
                           f"got {accumulate}", 2)
    model, optimizer, scheduler = build_training(run.settings)
    if args.shard_optimizer:
        try:
            sharding_rule(optimizer)
        except ValueError as error:
            raise CommandError(f"argument --shard-optimizer: {error}", 2) from None
    start = resume_point(run, model, optimizer, scheduler) if run.resuming else None  # every rank reads it
    return _Setup(run, model, optimizer, scheduler, start, folder)


def _settings_digest(setup: _Setup, args: argparse.Namespace) -> float:
    """48 bits of a hash of the settings that must agree on every rank (data-parallel flags too), as a float64."""
    shared = {key: value for key, value in setup.run.settings.items() if key not in LOCAL_SETTINGS}
    flags = {"shard_optimizer": args.shard_optimizer, "bucket_mb": args.bucket_mb}
    text = json.dumps([str(setup.run.out), shared, flags], sort_keys=True, default=str)
    return float(int(hashlib.sha256(text.encode()).hexdigest()[:12], 16))


def _agreed(world: Any, attempt: Callable[[], Any], digest: Callable[[Any], float] | None = None) -> Any:
    """``attempt()`` on every rank, then one all-reduce of each rank's exit code (and settings digest).

    Returns the attempt's result when every rank succeeded (with equal digests); otherwise raises
    ``CommandError`` on the ranks that print the error and returns its exit code on the others.
    """
    status = backend.np.zeros((2, world.size), dtype=backend.np.float64)
    result, message = None, ""
    try:
        result = attempt()
    except CommandError as error:
        message, status[0, world.rank] = str(error), error.exit_code
    except Exception as error:  # any failure must reach the agreement, or the others hang
        message, status[0, world.rank] = f"{type(error).__name__}: {error}", 1
    if digest is not None and not message:
        status[1, world.rank] = digest(result)
    world.allreduce_sum(status)
    failed = [rank for rank in range(world.size) if status[0, rank]]
    if not failed and digest is not None:
        failed = [rank for rank in range(world.size) if status[1, rank] != status[1, 0]]
        if world.rank in failed:
            message = (f"rank {world.rank} was started with other settings than rank 0: "
                       "every rank must run the same command")
        status[0, failed] = 2
    if not failed:
        return result
    code = int(status[0, failed[0]])
    if message and (world.rank == 0 or len(failed) < world.size):
        tag = "" if len(failed) == world.size else f"rank {world.rank} of {world.size}: "
        raise CommandError(tag + message, code)
    return code


def _train(world: Any, args: argparse.Namespace, setup: _Setup) -> int:
    """Wrap the model and optimizer for the world and train; a rank that fails alone aborts the job."""
    try:
        parallel = DataParallel(setup.model, world, bucket_mb=getattr(args, "bucket_mb", "auto"),
                                backward_passes=setup.run.settings["accumulate"])  # broadcasts rank 0's weights
        optimizer = ShardedOptimizer(setup.optimizer, parallel) if args.shard_optimizer else setup.optimizer
        workers = DataParallelWorkers(parallel)
        if world.is_root:
            return train_and_write(setup.run, setup.start, setup.model, optimizer, setup.scheduler, workers=workers)
        fit_run(setup.run, setup.model, optimizer, setup.scheduler, record=None, workers=workers)
        return 0
    except RankFailure as failure:  # every rank raised it at the same step
        if world.is_root:
            raise CommandError(str(failure), 1) from None
        return 1
    except BaseException as error:
        if world.size == 1:
            raise
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
        text = " ".join(str(error).split())
        sys.stderr.write(f"lamb-edu train: error: rank {world.rank} of {world.size} failed: "
                         f"{type(error).__name__}{': ' + text if text else ''}; ending every rank\n")
        sys.stderr.flush()
        world.abort(code)
        raise
