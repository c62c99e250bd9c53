"""What ``lamb-edu train`` does once everything is checked and the folder's lock is held: train, write the files.

Interruption: the first Ctrl-C asks ``fit`` to stop before its next step; it saves a checkpoint,
``summary.json`` says "interrupted", and the command exits 130 with the command that continues the
run. ``--resume DIR`` continues from the checkpoint and ends bit-identical to a run never interrupted.
A second Ctrl-C stops at once, and a Ctrl-C while the results are written leaves "interrupted" too:
the last checkpoint (every ``--checkpoint-every`` steps and each epoch's end) is there to resume. A
kill leaves "running" and the last complete checkpoint: ``--resume`` continues it.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from lamb_edu import backend, plots
from lamb_edu.cli.figures import save_figure
from lamb_edu.cli.output import epoch_line, finished_lines, interrupted_line, started_line
from lamb_edu.cli.parallel_report import parallel_report, parallel_series, parallel_timings
from lamb_edu.cli.run_setup import ResumePoint, Run
from lamb_edu.cli.settings import LOG_EVERY
from lamb_edu.train import as_task, describe_model, detect_divergence, fit, write_atomically
from lamb_edu.train.run_folder import (
    CURVES,
    METRICS,
    TRUST,
    MetricsLog,
    read_summary,
    remove_temporaries,
    write_summary,
)

__all__ = ["train_and_write", "fit_run"]


def _interrupt_handler() -> Any:
    """Ctrl-C asks training to stop after the current step (a second Ctrl-C stops at once)."""
    requested = {"stop": False}

    def handle(signum: int, frame: Any) -> None:
        requested["stop"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handle)
    return (lambda: requested["stop"]), previous


def fit_run(run: Run, model: Any, optimizer: Any, scheduler: Any, record: Callable[[dict[str, Any]], Any] | None,
            workers: Any = None) -> Any:
    """``fit`` with the run's settings, checkpointing into its folder; Ctrl-C stops it between steps.

    With several ``workers`` Ctrl-C ends the job at once (the ranks could not agree on the step to
    stop at); the last checkpoint resumes it.
    """
    settings = run.settings
    alone = workers is None or workers.world_size == 1
    should_stop, previous = _interrupt_handler() if alone else (None, None)
    try:
        return fit(model, optimizer, run.data, settings["epochs"], settings["batch_size"], seed=settings["seed"],
                   train_size=settings["train_size"], log_every=LOG_EVERY, scheduler=scheduler, checkpoint_dir=run.out,
                   checkpoint_every=settings["checkpoint_every"], resume=run.resuming, progress=record is not None,
                   callback=record, accumulate=settings["accumulate"], workers=workers, stop=should_stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def train_and_write(run: Run, start: ResumePoint, model: Any, optimizer: Any, scheduler: Any,
                    workers: Any = None) -> int:
    """Train (or resume) into the run's folder; write metrics as they come, then trust.npz, curves.png, summary.json.

    The caller holds the folder's lock and has checked everything (``run_setup``). With data-parallel
    ``workers`` (this is rank 0) summary.json and trust.npz also record the world and the per-step
    compute and all-reduce times.
    """
    out, settings = run.out, run.settings
    document = {"run_id": start.run_id, "settings": settings, "task": as_task(run.data).describe(),
                "architecture": describe_model(model)}
    if workers is not None:
        document["data_parallel"] = parallel_report(workers, optimizer)
    remove_temporaries(out)  # a killed writer's half-written files: this process is the folder's only writer
    write_summary(out, "running", document)
    metrics = MetricsLog(out / METRICS, start.run_id, start.kept_metrics)
    print(started_line(settings, out, run.resuming), flush=True)

    def record(event: dict[str, Any]) -> None:
        metrics.write(event)
        if event["type"] == "epoch":
            tqdm.write(epoch_line(event, settings["epochs"]), file=sys.stdout)

    try:
        history = fit_run(run, model, optimizer, scheduler, record, workers)
    except KeyboardInterrupt as interrupted:
        steps = getattr(interrupted, "history", None)
        return _interrupted(out, document, steps.steps if steps is not None else None)
    finally:
        metrics.close()
    try:
        print(_write_results(out, settings, document, history, workers))
    except KeyboardInterrupt:  # the checkpoint of the last epoch is complete: resuming writes the results
        if read_summary(out).get("status") == "finished":
            raise
        return _interrupted(out, document, history.steps if history.nonfinite_step is None else None)
    return 0


def _interrupted(out: Path, document: dict[str, Any], steps: int | None) -> int:
    """summary.json "interrupted" and the resume hint; exit code 130."""
    write_summary(out, "interrupted", {**document, "steps": steps})
    print(interrupted_line(out, steps), file=sys.stderr)
    return 130


def _write_results(out: Path, settings: dict[str, Any], document: dict[str, Any], history: Any, workers: Any) -> str:
    """trust.npz and curves.png, then summary.json marked finished (written last: the run is complete).

    Returns what to print.
    """
    # Divergence need not mean NaN: the loss can climb back to chance level while weights explode.
    verdict = detect_divergence(history.step_loss, history.weight_norm, history.log_steps, history.nonfinite_step)
    arrays = history.trust_arrays()
    if workers is not None:
        document = {**document, "data_parallel": {**document["data_parallel"], **parallel_timings(workers)}}
        arrays.update(parallel_series(workers, history.steps))
    write_atomically(out / TRUST, lambda handle: backend.np.savez(handle, **arrays))
    label = plots.settings_labels([settings])[0]
    network = {"mlp": f"MNIST, MLP {settings['hidden']}",
               "tiny-bert": f"tiny Shakespeare, TinyBERT d_model {settings.get('d_model')} x {settings.get('layers')} "
                            f"layers, context {settings.get('context')}"}.get(settings["model"],
                                                                             f"MNIST, {settings['model'].upper()}")
    figure = plots.plot_training_curves([plots.history_run(history, label)], title=f"{network}: {label}")
    save_figure(figure, out / CURVES, dpi=120)
    final = history.final()
    write_summary(out, "finished", {**document, "final": final, "nonfinite_step": history.nonfinite_step,
                                    "verdict": verdict.as_dict(), "seconds": history.seconds, "steps": history.steps,
                                    "epochs": history.epochs, "parameter_names": history.parameter_names})
    return finished_lines(out, final, history.seconds, history.nonfinite_step, verdict)
