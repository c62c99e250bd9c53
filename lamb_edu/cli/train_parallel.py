"""``lamb-edu train --data-parallel``: one run on the ranks of an MPI job (``mpiexec -n N lamb-edu train ...``).

Every rank reads the settings and the data and builds the model; rank 0's weights are broadcast; rank
r computes slice r of every global batch (``--batch-size`` is the global batch, shuffled alike on every
rank); one all-reduce sums the gradients and every rank takes the same step. Only rank 0 prints and
writes the run folder. Every rank reads the checkpoint it resumes, whatever the world size that wrote it.

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

from lamb_edu.cli.run_folder import prepare_out_dir
from lamb_edu.cli.values import CommandError
from lamb_edu.distributed.data_parallel import DEFAULT_BUCKET_MB

__all__ = ["add_data_parallel_flags", "run_data_parallel", "parallel_report", "parallel_timings", "parallel_series"]

# Settings that may differ between ranks (each machine may keep the data elsewhere).
LOCAL_SETTINGS = ("data_dir",)


class _Setup(NamedTuple):
    out: Any
    settings: dict[str, Any]
    resuming: bool
    data: Any
    model: Any
    optimizer: Any
    scheduler: Any


def add_data_parallel_flags(parser: argparse.ArgumentParser) -> None:
    """``--data-parallel`` and ``--shard-optimizer``."""
    group = parser.add_argument_group("data-parallel training (run under mpiexec -n N)")
    group.add_argument("--data-parallel", action="store_true",
                       help="share every global batch over the N ranks of the MPI job: rank r computes slice r and "
                            "one all-reduce sums the gradients (N must divide --batch-size; without mpiexec, N = 1)")
    group.add_argument("--shard-optimizer", action="store_true",
                       help="with --data-parallel, ZeRO stage 1: each rank keeps the optimizer state (m, v) only "
                            "for its 1/N of the parameters (lamb, lars, adam, adamw)")
    group.add_argument("--bucket-mb", type=_bucket_mb, default=DEFAULT_BUCKET_MB, metavar="MB",
                       help="gradient bucket size: each bucket is sent as soon as backward has finished it "
                            f"(default {DEFAULT_BUCKET_MB}; 0: one bucket, sent after backward)")


def _bucket_mb(text: str) -> float | None:
    """``--bucket-mb``: a finite number of megabytes >= 0; 0 means one bucket (None)."""
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value or None


def run_data_parallel(args: argparse.Namespace) -> int:
    """Set up on every rank, agree that all succeeded, then train; rank 0 writes the run folder.

    Also run for every ``train`` under an MPI launcher, so that a rank started without
    ``--data-parallel`` takes part in the agreement (and is refused) instead of leaving the others waiting.
    """
    from lamb_edu.distributed import get_world  # noqa: PLC0415

    world = get_world()
    setup = _agreed(world, lambda: _set_up(args, world.size), lambda done: _settings_digest(done, args))
    if isinstance(setup, int):
        return setup
    ready = _agreed(world, lambda: prepare_out_dir(setup.out, args.overwrite) if world.is_root and not setup.resuming
                    else None)
    if isinstance(ready, int):
        return ready
    return _train(world, args, setup)


def _set_up(args: argparse.Namespace, ranks: int) -> _Setup:
    """What one process would set up, plus the checks of a world of ``ranks``; no collective, nothing written."""
    from lamb_edu.cli.train_command import build_training, prepare_run  # noqa: PLC0415
    from lamb_edu.cli.train_outputs import checkpoint_position  # noqa: PLC0415
    from lamb_edu.distributed import sharding_rule  # noqa: PLC0415

    if not args.data_parallel:
        raise CommandError("argument --shard-optimizer: needs --data-parallel" if args.shard_optimizer else
                           f"argument --data-parallel: every rank of an MPI job of {ranks} needs it", 2)
    out, settings, resuming, data = prepare_run(args)
    batch, accumulate = settings["batch_size"], settings["accumulate"]
    if batch % ranks:
        raise CommandError(f"argument --batch-size: a global batch of {batch} cannot be split evenly over {ranks} "
                           f"ranks; choose a multiple of {ranks}", 2)
    if accumulate > batch // ranks:
        raise CommandError(f"argument --accumulate: at most the {batch // ranks} examples of each rank's slice, "
                           f"got {accumulate}", 2)
    model, optimizer, scheduler = build_training(settings)
    if args.shard_optimizer:
        try:
            sharding_rule(optimizer)
        except ValueError as error:
            raise CommandError(f"argument --shard-optimizer: {error}", 2) from None
    if resuming:
        checkpoint_position(out, model, optimizer, scheduler)  # every rank reads it: check it on every rank
    return _Setup(out, settings, resuming, data, model, optimizer, scheduler)


def _settings_digest(setup: _Setup, args: argparse.Namespace) -> float:
    """48 bits of a hash of the settings that must agree on every rank (data-parallel flags too), as a float64."""
    shared = {key: value for key, value in setup.settings.items() if key not in LOCAL_SETTINGS}
    flags = {"shard_optimizer": args.shard_optimizer, "bucket_mb": args.bucket_mb}
    text = json.dumps([str(setup.out), shared, flags], sort_keys=True, default=str)
    return float(int(hashlib.sha256(text.encode()).hexdigest()[:12], 16))


def _agreed(world: Any, attempt: Callable[[], Any], digest: Callable[[Any], float] | None = None) -> Any:
    """``attempt()`` on every rank, then one all-reduce of each rank's exit code (and settings digest).

    Returns the attempt's result when every rank succeeded (with equal digests); otherwise raises
    ``CommandError`` on the ranks that print the error and returns its exit code on the others.
    """
    from lamb_edu import backend  # noqa: PLC0415

    status = backend.np.zeros((2, world.size), dtype=backend.np.float64)
    result, message = None, ""
    try:
        result = attempt()
    except CommandError as error:
        message, status[0, world.rank] = str(error), error.exit_code
    except Exception as error:  # noqa: BLE001  (any failure must reach the agreement, or the others hang)
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
    from lamb_edu.cli.train_outputs import fit_run, train_and_write  # noqa: PLC0415
    from lamb_edu.distributed import DataParallel, RankFailure, ShardedOptimizer  # noqa: PLC0415
    from lamb_edu.train import DataParallelWorkers  # noqa: PLC0415

    try:
        parallel = DataParallel(setup.model, world, bucket_mb=getattr(args, "bucket_mb", DEFAULT_BUCKET_MB),
                                backward_passes=setup.settings["accumulate"])  # broadcasts rank 0's weights
        optimizer = ShardedOptimizer(setup.optimizer, parallel) if args.shard_optimizer else setup.optimizer
        workers = DataParallelWorkers(parallel)
        run = (setup.out, setup.settings, setup.data, setup.model, optimizer, setup.scheduler, setup.resuming)
        if world.is_root:
            return train_and_write(*run, workers=workers)
        fit_run(*run, record=None, workers=workers)
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


def parallel_report(workers: Any, optimizer: Any) -> dict[str, Any]:
    """The world for summary.json: its size, the gradient bytes each all-reduce sends, ZeRO-1's saving."""
    from lamb_edu.distributed import ShardedOptimizer  # noqa: PLC0415

    parallel = workers.parallel
    sharded = isinstance(optimizer, ShardedOptimizer)
    report: dict[str, Any] = {"world_size": workers.world_size, "parameters": parallel.flat.numel,
                              "bucket_mb": parallel.bucket_mb, "buckets": len(parallel.buckets.plan),
                              "traffic_bytes_per_step": optimizer.traffic() if sharded else parallel.traffic(),
                              "shard_optimizer": sharded}
    if report["shard_optimizer"]:
        state = optimizer.state_bytes()
        report["optimizer_state_bytes"] = {**state, "saved_per_rank": state["unsharded"] - state["per_rank"]}
    return report


def parallel_timings(workers: Any) -> dict[str, Any]:
    """Rank 0's mean and total compute and exposed communication seconds, and gradient bytes, over its steps."""
    return {"timings": {"measured_on": "rank 0, the steps this process ran", **workers.parallel.timing_summary()}}


def parallel_series(workers: Any, last_step: int) -> dict[str, Any]:
    """Per-step arrays for trust.npz: ``data_parallel/step`` (the run's step numbers) and one per timing."""
    arrays = workers.parallel.timing_arrays()
    arrays["step"] = arrays["step"] - len(arrays["step"]) + last_step  # this process may have resumed a run
    return {f"data_parallel/{key}": value for key, value in arrays.items()}
