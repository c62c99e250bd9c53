"""Setting up a ``lamb-edu train`` run, shared by one process and the ranks of a data-parallel job.

Everything is checked before anything is written: the flags (``prepare_run``), the data, the model
and optimizer (``build_training``), and, for ``--resume``, the whole checkpoint against the settings
``summary.json`` records (the one place a resumed run's settings come from) and ``metrics.jsonl``
against the checkpoint (``resume_point``). Only then, holding the folder's lock, does a run write:
``start_new_folder`` empties the folder of an earlier run's files (``--overwrite``), or the resumed run
rewrites ``summary.json`` and trims ``metrics.jsonl`` to the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from lamb_edu.cli.registry import MODELS, build_model, build_optimizer
from lamb_edu.cli.settings import (
    RUN_DEFAULTS,
    check_applicable,
    check_saved_settings,
    chosen_backend,
    default_out_dir,
    given_run_flags,
    train_settings,
    use_backend,
)
from lamb_edu.cli.values import CommandError
from lamb_edu.data import load_mnist, load_tiny_shakespeare
from lamb_edu.optim import schedules
from lamb_edu.train import MaskedLM, Position, RunFileError, has_checkpoint, read_checkpoint
from lamb_edu.train.run_folder import clear_run_files, metrics_kept_at, new_run_id, read_summary, run_files_present
from lamb_edu.train.run_lock import LOCK_FILE

__all__ = ["Run", "ResumePoint", "prepare_run", "build_training", "build_scheduler", "resume_point",
           "start_new_folder", "refuse_mpi_copies"]


class Run(NamedTuple):
    """A run checked and ready: its folder, settings, whether it resumes, its data and ``summary.json`` (resume)."""

    out: Path
    settings: dict[str, Any]
    resuming: bool
    data: Any
    summary: dict[str, Any] | None


class ResumePoint(NamedTuple):
    """Where a run starts: step and epoch of its checkpoint (0 for a new run), its id, the metrics lines it keeps."""

    step: int
    epoch: int
    run_id: str
    kept_metrics: list[str] | None


def refuse_mpi_copies(args: argparse.Namespace) -> None:
    """Exit 2 when this process is one of several that mpiexec started without ``--data-parallel``.

    Each would train the same run into the same folder; the folder's lock would refuse all but one.
    """
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "1"
    if not args.data_parallel and size.isdigit() and int(size) > 1:
        raise CommandError(f"argument --data-parallel: this is one of {size} processes started by mpiexec; without "
                           "--data-parallel each would train the same run into one folder (add --data-parallel)", 2)


def prepare_run(args: argparse.Namespace) -> Run:
    """The run's folder, settings, whether it resumes, and its data, all checked; nothing is written."""
    if args.resume is not None:
        out, summary = args.resume, _summary_to_resume(args)
        data_dir = str(args.data_dir) if args.data_dir is not None else summary["settings"].get("data_dir")
        settings = {**RUN_DEFAULTS, **summary["settings"], "backend": chosen_backend(args), "data_dir": data_dir}
    else:
        if args.overwrite and args.out is None:
            raise CommandError("argument --overwrite: needs --out DIR", 2)
        check_applicable(args)
        summary, settings = None, train_settings(args)
        if settings["heads"] is not None and settings["d_model"] % settings["heads"]:
            raise CommandError(f"argument --heads: must divide --d-model ({settings['d_model']}), "
                               f"got {settings['heads']}", 2)
        if settings["accumulate"] > settings["batch_size"]:
            raise CommandError(f"argument --accumulate: at most --batch-size ({settings['batch_size']}), "
                               f"got {settings['accumulate']}", 2)
        out = args.out if args.out is not None else default_out_dir(settings)
    if out.exists() and not out.is_dir():
        raise CommandError(f"argument --out: {out} exists and is not a directory", 2)
    use_backend(settings["backend"])
    data = load_task(settings)
    available = settings["train_size"] or training_examples(data)
    if available > training_examples(data):
        raise CommandError(f"argument --train-size: at most {training_examples(data)}, got {available}", 2)
    if settings["batch_size"] > available:
        raise CommandError(f"argument --batch-size: at most the {available} training examples, "
                           f"got {settings['batch_size']}", 2)
    return Run(out, settings, summary is not None, data, summary)


def load_task(settings: dict[str, Any]) -> Any:
    """What the model trains on: MNIST, or for a masked-LM model the tiny-Shakespeare task of its context."""
    if MODELS[settings.get("model", "mlp")].task == "mnist":
        return load_mnist(settings["data_dir"])
    return MaskedLM(load_tiny_shakespeare(settings["data_dir"]), settings["context"])


def training_examples(data: Any) -> int:
    """Training examples of the data ``load_task`` gave: MNIST images or masked-LM windows."""
    return data.size if isinstance(data, MaskedLM) else len(data.train_images)


def _summary_to_resume(args: argparse.Namespace) -> dict[str, Any]:
    """``summary.json`` of the run ``--resume`` names, checked; other run flags are refused (exit 2)."""
    given = given_run_flags(args)
    if given:
        raise CommandError(f"argument --resume: takes the settings of the run it continues; drop {', '.join(given)}", 2)
    summary = read_summary(args.resume)
    if summary.get("status") == "finished":
        raise CommandError(f"argument --resume: the run in {args.resume} has finished; nothing to resume", 2)
    check_saved_settings(summary["settings"], args.resume / "summary.json")
    return summary


def build_training(settings: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The model, optimizer and learning-rate scheduler the settings describe (exit 2 for a bad hyperparameter)."""
    model = build_model(settings)
    try:
        optimizer = build_optimizer(settings, list(model.named_parameters()))
    except ValueError as error:
        raise CommandError(str(error), 2) from None
    return model, optimizer, build_scheduler(settings, optimizer)


def build_scheduler(settings: dict[str, Any], optimizer: Any) -> Any:
    """Linear warm-up: lr·(s + 1)/warmup_steps for the first steps, then lr (None without warm-up)."""
    if not settings["warmup_steps"]:
        return None
    return schedules.LRScheduler(optimizer, schedules.LinearWarmup(settings["warmup_steps"]))


def resume_point(run: Run, model: Any, optimizer: Any, scheduler: Any) -> ResumePoint:
    """Check all of a resumed run against its settings (exit 1 naming the file); nothing is written.

    The checkpoint (every number, every hyperparameter, the data settings), that it lies within the
    run's epochs, and the lines of ``metrics.jsonl`` up to it. Called holding the folder's lock: the
    summary must still be the one ``prepare_run`` read before it.
    """
    out, settings = run.out, run.settings
    try:  # read again under the lock: the run that held it may have finished (or resumed) since prepare_run
        unchanged = read_summary(out) == run.summary
    except (RunFileError, FileNotFoundError):
        unchanged = False
    if not unchanged:
        raise CommandError(f"argument --resume: {out / 'summary.json'} changed while this command started (another "
                           f"process was writing the run); run the command again", 1)
    if not has_checkpoint(out):
        raise CommandError(f"argument --resume: {out} holds no checkpoint (the run stopped before its first one)", 1)
    expected = Position(seed=settings["seed"], batch_size=settings["batch_size"], accumulate=settings["accumulate"],
                        train_size=settings["train_size"] or training_examples(run.data))
    try:
        position = read_checkpoint(out, model, optimizer, scheduler, expected).position
        if position.epoch > settings["epochs"] or (position.epoch == settings["epochs"] and position.batch > 0):
            raise RunFileError(f"{out / 'summary.json'}: settings.epochs is {settings['epochs']}, but the checkpoint "
                               f"is at step {position.step}, in epoch {position.epoch + 1}: a run cannot go back")
        run_id = run.summary.get("run_id") if run.summary is not None else None
        kept = metrics_kept_at(out, run_id, position.step, position.epoch)
    except (RunFileError, ValueError) as error:
        raise CommandError(str(error), 1) from None
    if run_id is None:  # a run from before run ids: it gets one now
        run_id = new_run_id()
        kept = [json.dumps({"type": "run", "run_id": run_id}), *kept]
    return ResumePoint(position.step, position.epoch, run_id, kept)


def start_new_folder(out: Path, overwrite: bool) -> ResumePoint:
    """Make ``out`` ready for a new run (the caller holds its lock), or refuse (exit 2) having changed nothing.

    A folder that holds anything is refused unless ``--overwrite``, which deletes only the files a run
    writes, and only when everything in the folder is such a file.
    """
    owned, foreign = run_files_present(out)
    present = [name for name in owned + foreign if name != LOCK_FILE]
    if present and not overwrite:
        raise CommandError(f"argument --out: {out} is not empty ({', '.join(present[:4])}"
                           f"{', …' if len(present) > 4 else ''}); pass --overwrite to replace it, "
                           f"--resume {out} to continue the run in it, or choose another --out", 2)
    try:
        clear_run_files(out)
    except ValueError as error:
        raise CommandError(f"argument --overwrite: {error}: choose another --out", 2) from None
    return ResumePoint(0, 0, new_run_id(), None)
