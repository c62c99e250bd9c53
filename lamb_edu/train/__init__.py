"""The training layer: ``fit`` trains a model on a task with any optimizer and returns a ``History``.

- ``loop``: ``fit``, the epoch loop;
- ``tasks``: what is trained: data, loss and scores (``Classification`` of MNIST, ``MaskedLM`` of Shakespeare);
- ``step``: one step on a global batch, with gradient accumulation (``train_step``);
- ``workers``: who computes which part of a global batch (the seam for data-parallel training);
- ``metrics``: ``evaluate`` and the per-step norms and trust ratios (``StepLogger``);
- ``history``: ``History``, what a run measured, as host arrays;
- ``divergence``: the ``Verdict`` on a run: learned, diverged, or never learned (``detect_divergence``);
- ``checkpoint`` (with ``checkpoint_file`` and ``checkpoint_fit``) and ``position``: save, check and resume a run;
- ``run_folder`` and ``run_lock``: the files of a ``lamb-edu train`` run, read and written in one place,
  and the lock that gives a run folder one writer;
- ``files``: atomic writes and JSON reads whose errors name the file;
- ``progress``: the progress bar.
"""

from lamb_edu.train.checkpoint import (
    CHECKPOINT_FILES,
    CHECKPOINT_JSON,
    CHECKPOINT_NPZ,
    describe_model,
    describe_optimizer,
    has_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from lamb_edu.train.divergence import (
    CHANCE_LOSS,
    OUTCOMES,
    Divergence,
    Verdict,
    all_finite,
    detect_divergence,
    smoothed_loss,
)
from lamb_edu.train.files import RunFileError, read_json, write_atomically, write_json
from lamb_edu.train.history import History, json_safe
from lamb_edu.train.loop import TrainingStopped, fit
from lamb_edu.train.metrics import evaluate, trust_statistics
from lamb_edu.train.position import Position
from lamb_edu.train.step import accumulate_gradients, micro_batches, train_step
from lamb_edu.train.tasks import Classification, MaskedLM, Task, as_task
from lamb_edu.train.workers import DataParallelWorkers, SingleProcess, Workers

__all__ = [
    "fit", "TrainingStopped", "History", "evaluate", "trust_statistics", "train_step", "accumulate_gradients",
    "micro_batches", "Task", "Classification", "MaskedLM", "as_task", "Workers", "SingleProcess",
    "DataParallelWorkers", "Verdict", "OUTCOMES", "Divergence", "smoothed_loss", "detect_divergence", "all_finite",
    "CHANCE_LOSS",
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "has_checkpoint", "describe_optimizer",
    "describe_model", "Position", "CHECKPOINT_NPZ", "CHECKPOINT_JSON", "CHECKPOINT_FILES", "RunFileError", "read_json",
    "write_atomically", "write_json", "json_safe",
]
