"""What ``lamb-edu train`` prints: every line of its output, written in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["started_line", "epoch_line", "interrupted_line", "finished_lines"]


def started_line(settings: dict[str, Any], out: Path, resuming: bool) -> str:
    """``training lamb lr=0.01 on MNIST; results in DIR`` (or ``resuming ...``; tiny Shakespeare for tiny-bert)."""
    where = "tiny Shakespeare (masked characters)" if settings.get("model") == "tiny-bert" else "MNIST"
    return (f"{'resuming' if resuming else 'training'} {settings['optimizer']} lr={settings['lr']:g} on {where}; "
            f"results in {out}")


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One epoch's losses, accuracy and time; says when a non-finite number stopped training.

    A masked-LM epoch shows the validation loss in bits per character and the masked-character accuracy.
    """
    if "bits_per_char" in record:
        scores = (f"validation {record['bits_per_char']:.3f} bits/char  "
                  f"masked accuracy {100 * record['test_accuracy']:.2f}%")
    else:
        scores = f"test loss {record['test_loss']:.4f}  test accuracy {100 * record['test_accuracy']:.2f}%"
    line = f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f}  {scores}  " \
           f"{record['seconds']:.1f} s"
    step = record.get("nonfinite_step")
    if step is not None:
        line += f"  DIVERGED at step {step} (non-finite loss or weights): training stopped"
    return line


def interrupted_line(out: Path, steps: int | None) -> str:
    """The line after Ctrl-C: where the run stopped and the command that continues it."""
    return (f"interrupted{f' after step {steps}' if steps is not None else ''}; continue with: "
            f"lamb-edu train --resume {out}")


def finished_lines(out: Path, final: dict[str, Any], seconds: float, nonfinite_step: int | None,
                   verdict: Any) -> str:
    """The last lines of a finished run: its accuracy and time, or where it diverged."""
    if nonfinite_step is not None:
        return f"diverged at step {nonfinite_step}; wrote {out}"
    measure = "validation masked accuracy" if "bits_per_char" in final else "test accuracy"
    done = f"final {measure} {100 * final['test_accuracy']:.2f}% in {seconds:.1f} s; wrote {out}"
    if verdict.outcome == "diverged":
        return f"learned, then diverged at step {verdict.step}: {verdict.reasons[0]}\n{done}"
    return done
