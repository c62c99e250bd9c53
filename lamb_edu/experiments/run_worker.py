"""A worker of ``experiments.run_pool``: ``python -m lamb_edu.experiments.run_worker``.

It reads the study's spec (one JSON line: data, split sizes, the MLP's hidden sizes, epochs, the
queue's options, the optimizers), then trains one run per request line and answers each with the
run as one JSON line (``batch_sweep.run_to_json``). Its parent sets its threads to one.
"""

from __future__ import annotations

import json
import sys

from lamb_edu import data, nn
from lamb_edu.experiments.batch_sweep import RunQueue, run_to_json, study_data
from lamb_edu.experiments.study_optimizers import StudyOptimizer

__all__ = ["serve"]


def serve() -> None:
    """A worker: read the spec, then train each request line and answer with the run's row and curve."""
    answers, sys.stdout = sys.stdout, sys.stderr  # anything else printed must not break the answers
    spec = json.loads(sys.stdin.readline())
    split = study_data(data.load_mnist(spec["data_dir"]), spec["train_size"], spec["validation_size"],
                       spec["test_size"], spec["curve_size"])
    hidden = list(spec["hidden"])
    queue = RunQueue(lambda seed: nn.MLP([784, *hidden, 10], seed=seed), split, epochs=spec["epochs"],
                     **spec["options"])
    optimizers = {entry["name"]: StudyOptimizer(**{**entry, "grid": tuple(entry["grid"])})
                  for entry in spec["optimizers"]}
    for line in sys.stdin:
        request = json.loads(line)
        study_optimizer, knobs = optimizers[request["optimizer"]], request["settings"]
        run = queue.run(study_optimizer.name, study_optimizer.maker(knobs), request["batch_size"], request["lr"],
                        request["seed"], settings=knobs, **request["options"])
        answers.write(run_to_json(run) + "\n")
        answers.flush()


if __name__ == "__main__":
    try:
        serve()
    except (KeyboardInterrupt, BrokenPipeError):  # the study was stopped: it reports that, not each worker
        sys.exit(130)
