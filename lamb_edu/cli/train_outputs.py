"""What ``lamb-edu train`` does once everything is checked: train, then write the run's files.

Interruption: the first Ctrl-C asks ``fit`` to stop before its next step; it saves a checkpoint,
``summary.json`` says "interrupted", and the command exits 130. ``--resume DIR`` continues from the
checkpoint and ends bit-identical to a run never interrupted. A second Ctrl-C stops at once: the
last checkpoint (every ``--checkpoint-every`` steps and each epoch's end) is still there to resume.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Callable

from lamb_edu.cli.run_folder import MetricsLog, write_summary
from lamb_edu.cli.train_command import LOG_EVERY
from lamb_edu.cli.values import CommandError

__all__ = ["train_and_write", "fit_run", "checkpoint_position"]


def _interrupt_handler() -> Any:
    """Ctrl-C asks training to stop after the current step (a second Ctrl-C stops at once)."""
    requested = {"stop": False}

    def handle(signum: int, frame: Any) -> None:
        requested["stop"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handle)
    return (lambda: requested["stop"]), previous


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    if "bits_per_char" in record:  # the masked-LM task scores masked characters of its validation subset
        scores = (f"validation {record['bits_per_char']:.3f} bits/char  "
                  f"masked accuracy {100 * record['test_accuracy']:.2f}%")
    else:
        scores = f"test loss {record['test_loss']:.4f}  test accuracy {100 * record['test_accuracy']:.2f}%"
    line = f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f}  {scores}  {record['seconds']:.1f} s"
    if record.get("diverged"):
        line += f"  DIVERGED at step {record['diverged']} (non-finite loss or weights): training stopped"
    return line


def checkpoint_position(out: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, int]:
    """Where the checkpoint in ``out`` stands, after checking all of it (exit 1 naming the file if damaged)."""
    from lamb_edu.train import RunFileError, has_checkpoint, read_checkpoint  # noqa: PLC0415

    if not has_checkpoint(out):
        raise CommandError(f"argument --resume: {out} holds no checkpoint (the run stopped before its first one)", 1)
    try:
        position = read_checkpoint(out, model, optimizer, scheduler).position
    except (RunFileError, ValueError) as error:
        raise CommandError(str(error), 1) from None
    return {"step": position.step, "epoch": position.epoch}


def fit_run(out: Path, settings: dict[str, Any], data: Any, model: Any, optimizer: Any, scheduler: Any,
            resuming: bool, record: Callable[[dict[str, Any]], Any] | None, workers: Any = None) -> Any:
    """``fit`` with the run's settings, checkpointing into ``out``; Ctrl-C stops it between steps.

    With several ``workers`` Ctrl-C ends the job at once (the ranks could not agree on the step to
    stop at); the last checkpoint resumes it.
    """
    from lamb_edu.train import fit  # noqa: PLC0415

    alone = workers is None or workers.world_size == 1
    should_stop, previous = _interrupt_handler() if alone else (None, None)
    try:
        return fit(model, optimizer, data, settings["epochs"], settings["batch_size"], seed=settings["seed"],
                   train_size=settings["train_size"], log_every=LOG_EVERY, scheduler=scheduler, checkpoint_dir=out,
                   checkpoint_every=settings["checkpoint_every"], resume=resuming, progress=record is not None,
                   callback=record, accumulate=settings["accumulate"], workers=workers, stop=should_stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def train_and_write(out: Path, settings: dict[str, Any], data: Any, model: Any, optimizer: Any, scheduler: Any,
                    resuming: bool, workers: Any = None) -> int:
    """Train (or resume) into ``out``; write metrics as they come, then trust.npz, curves.png, summary.json.

    With data-parallel ``workers`` (this is rank 0) summary.json and trust.npz also record the world
    and the per-step compute and all-reduce times (``train_parallel.parallel_report``).
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from lamb_edu.train import as_task, describe_model  # noqa: PLC0415

    resume_at = checkpoint_position(out, model, optimizer, scheduler) if resuming else None
    task = as_task(data).describe()
    document = {"settings": settings, "task": task, "architecture": describe_model(model)}
    if workers is not None:
        from lamb_edu.cli.train_parallel import parallel_report  # noqa: PLC0415

        document["data_parallel"] = parallel_report(workers, optimizer)
    write_summary(out, "running", document)
    metrics = MetricsLog(out / "metrics.jsonl", resume_at)
    where = "tiny Shakespeare (masked characters)" if task["name"] == "masked-lm" else "MNIST"
    print(f"{'resuming' if resuming else 'training'} {settings['optimizer']} lr={settings['lr']:g} on {where}; "
          f"results in {out}", flush=True)

    def record(event: dict[str, Any]) -> None:
        metrics.write(event)
        if event["type"] == "epoch":
            tqdm.write(_epoch_line(event, settings["epochs"]), file=sys.stdout)

    try:
        history = fit_run(out, settings, data, model, optimizer, scheduler, resuming, record, workers)
    except KeyboardInterrupt as interrupted:
        steps = getattr(interrupted, "history", None)
        write_summary(out, "interrupted", {**document, "steps": steps.steps if steps is not None else None})
        print(f"interrupted{f' after step {steps.steps}' if steps is not None else ''}; continue with: "
              f"lamb-edu train --resume {out}", file=sys.stderr)
        return 130
    finally:
        metrics.close()
    _write_results(out, settings, document, history, workers)
    return 0


def _write_results(out: Path, settings: dict[str, Any], document: dict[str, Any], history: Any, workers: Any) -> None:
    """trust.npz and curves.png, then summary.json marked finished (written last: the run is complete)."""
    from lamb_edu import backend, plots  # noqa: PLC0415
    from lamb_edu.cli.figures import save_figure  # noqa: PLC0415
    from lamb_edu.train import detect_divergence, write_atomically  # noqa: PLC0415

    # Divergence need not mean NaN: the loss can climb back to chance level while weights explode.
    verdict = detect_divergence(history.step_loss, history.weight_norm, history.log_steps, history.diverged)
    arrays = history.trust_arrays()
    if workers is not None:
        from lamb_edu.cli.train_parallel import parallel_series, parallel_timings  # noqa: PLC0415

        document = {**document, "data_parallel": {**document["data_parallel"], **parallel_timings(workers)}}
        arrays.update(parallel_series(workers, history.steps))
    write_atomically(out / "trust.npz", lambda handle: backend.np.savez(handle, **arrays))
    label = plots.settings_labels([settings])[0]
    network = {"mlp": f"MNIST, MLP {settings['hidden']}",
               "tiny-bert": f"tiny Shakespeare, TinyBERT d_model {settings.get('d_model')} x {settings.get('layers')} "
                            f"layers, context {settings.get('context')}"}.get(settings["model"],
                                                                             f"MNIST, {settings['model'].upper()}")
    figure = plots.plot_training_curves([plots.history_run(history, label)], title=f"{network}: {label}")
    save_figure(figure, out / "curves.png", dpi=120)
    final = history.final()
    write_summary(out, "finished", {**document, "final": final, "diverged": history.diverged,
                                    "verdict": verdict.as_dict(), "seconds": history.seconds, "steps": history.steps,
                                    "epochs": history.epochs, "parameter_names": history.parameter_names})
    measure = "validation masked accuracy" if "bits_per_char" in final else "test accuracy"
    done = f"final {measure} {100 * final['test_accuracy']:.2f}% in {history.seconds:.1f} s; wrote {out}"
    if history.diverged is not None:
        print(f"diverged at step {history.diverged}; wrote {out}")
    elif verdict.status == "diverged":
        print(f"learned, then diverged at step {verdict.step}: {verdict.reasons[0]}\n{done}")
    else:
        print(done)
