"""Training a study's runs in worker processes (``experiments.run_pool``): waves found by dry passes, real workers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lamb_edu import nn
from lamb_edu.experiments import large_batch
from lamb_edu.experiments.batch_run import Pending, PendingRun
from lamb_edu.experiments.batch_sweep import RunQueue, run_from_json, run_to_json, study_data
from lamb_edu.experiments.large_batch_settings import LargeBatchSettings
from lamb_edu.experiments.run_pool import RunPool
from lamb_edu.experiments.study_optimizers import STUDY_OPTIMIZERS, StudyOptimizer
from lamb_edu.experiments.tuning import Dimension, SearchSpace, tune
from tests.test_large_batch import real_data_dir, synthetic_mnist

REPO = Path(__file__).resolve().parents[1]
SETTINGS = LargeBatchSettings(
    batch_sizes=(32, 128), epochs=1, train_size=256, validation_size=128, test_size=100, target=0.5, curve_size=64,
    optimizers=tuple(replace(o, grid=o.grid[2:6:2]) for o in STUDY_OPTIMIZERS[2:]), repeat_seeds=(1, 2), trials=3,
    steps_trials=3, hidden=(16,))


def _rows(result):
    """The run table without the times, as JSON text (so NaN equals NaN)."""
    return json.dumps([{key: value for key, value in row.items() if key != "seconds"} for row in result.table()])


def test_a_pending_run_stops_whoever_reads_it():
    run = PendingRun()
    with pytest.raises(Pending):
        run.validation_accuracy
    with pytest.raises(Pending):
        dataclasses.replace(run, lr_rule="tuned")  # what the study does to a report run


def test_tune_asks_for_every_trial_before_it_reads_one():
    events = []

    def train(settings, seed):
        events.append(("train", seed))
        return settings["lr"]

    def score(result):
        events.append(("score", result))
        return -abs(result - 0.01)

    space = SearchSpace((Dimension("lr", 1e-3, 1e-1),))
    tuning = tune(train, space, 4, score=score, report_seeds=(1,))
    assert [kind for kind, _ in events[:4]] == ["train"] * 4 and events[4][0] == "score"
    assert events[-1] == ("train", 1)  # the report comes after every score
    assert tuning.best.settings["lr"] == min((s["lr"] for s in space.draw(4)), key=lambda lr: abs(lr - 0.01))


class _InProcessPool:
    """A RunPool stand-in that trains the requests here, on the synthetic digits, and records each wave."""

    waves: list[list[dict]] = []

    def __init__(self, spec, workers):
        mnist = synthetic_mnist(384, 100)
        split = study_data(mnist, spec["train_size"], spec["validation_size"], spec["test_size"], spec["curve_size"])
        self.queue = RunQueue(lambda seed: nn.MLP([784, *spec["hidden"], 10], seed=seed), split,
                              epochs=spec["epochs"], **spec["options"])
        self.optimizers = {entry["name"]: StudyOptimizer(**entry) for entry in spec["optimizers"]}
        json.dumps(spec)  # what a real worker receives must be plain JSON

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def train(self, requests, on_run):
        type(self).waves.append(list(requests))
        for request in requests:
            json.dumps(request)
            o, knobs = self.optimizers[request["optimizer"]], request["settings"]
            run = self.queue.run(o.name, o.maker(knobs), request["batch_size"], request["lr"], request["seed"],
                                 settings=knobs, **request["options"])
            on_run(run_from_json(run_to_json(run)))  # the way a worker's answer comes back


def test_waves_of_runs_give_the_study_trained_one_run_at_a_time(monkeypatch):
    mnist = synthetic_mnist(384, 100)
    monkeypatch.setattr("lamb_edu.data.load_mnist", lambda data_dir=None: mnist)
    one_at_a_time = large_batch(settings=SETTINGS, workers=0)
    _InProcessPool.waves = []
    monkeypatch.setattr(sys.modules["lamb_edu.experiments.large_batch"], "RunPool", _InProcessPool)
    in_waves = large_batch(settings=SETTINGS, workers=2)
    assert _rows(in_waves) == _rows(one_at_a_time) and in_waves.workers == 2
    first = _InProcessPool.waves[0]
    kinds = [("steps" if r["options"].get("stop_at_target") else "trial") if r["settings"] else "grid" for r in first]
    # 2 optimizers x 2 batch sizes: 2 grid lrs, 3 quasi-random trials, the first steps-to-target trial
    assert (kinds.count("grid"), kinds.count("trial"), kinds.count("steps")) == (8, 12, 4)
    assert all(r["seed"] == 0 for r in first)
    # then the repeats, scaled lrs, reports and the 2nd steps trials; then the 3rd steps trials; nothing twice
    assert len(_InProcessPool.waves) == 3 and all(len(w) == 4 for w in _InProcessPool.waves[2:])
    keys = [json.dumps(r, sort_keys=True) for wave in _InProcessPool.waves for r in wave]
    assert len(keys) == len(set(keys))


def test_a_worker_that_fails_names_the_run():
    spec = {"data_dir": None, "train_size": 10**9, "validation_size": 1, "test_size": 10, "curve_size": 1,
            "hidden": [4], "epochs": 1, "options": {}, "optimizers": [STUDY_OPTIMIZERS[0].describe()]}
    request = {"optimizer": "sgd", "batch_size": 8, "lr": 0.1, "seed": 0, "settings": {}, "options": {}}
    with RunPool(spec, 1, stall_seconds=120) as pool, pytest.raises(RuntimeError, match="training sgd at batch 8"):
        pool.train([request], lambda run: None)
    assert pool.processes == []


def test_a_worker_that_hangs_is_ended(monkeypatch):
    monkeypatch.setattr(RunPool, "command", [sys.executable, "-c", "import time; time.sleep(60)"])
    request = {"optimizer": "sgd", "batch_size": 8, "lr": 0.1, "seed": 0, "settings": {}, "options": {}}
    pool = RunPool({}, 1, stall_seconds=0.5)
    with pytest.raises(RuntimeError, match="no run ended in 0.5 s"):
        pool.train([request], lambda run: None)
    assert pool.processes == []
    with pytest.raises(ValueError, match="workers"):
        RunPool({}, 0)


@pytest.mark.slow
def test_real_workers_give_the_same_runs_however_many_there_are():
    data_dir = real_data_dir()
    one = large_batch(settings=SETTINGS, data_dir=data_dir, workers=1)
    two = large_batch(settings=SETTINGS, data_dir=data_dir, workers=2)
    assert _rows(one) == _rows(two) and (one.workers, two.workers) == (1, 2)
    assert len({run.protocol for run in two.runs}) == 3


@pytest.mark.slow
def test_a_killed_pooled_study_resumes_from_its_journal(tmp_path):
    """SIGKILL the study (its workers die with it) once some runs are in the journal; the second start trains
    only the rest and gives the table of a study never stopped."""
    data_dir = real_data_dir()
    journal = tmp_path / "runs.jsonl"
    script = (f"from tests.test_run_pool import SETTINGS\nfrom lamb_edu.experiments import large_batch\n"
              f"large_batch(settings=SETTINGS, data_dir={data_dir!r}, workers=2, journal={str(journal)!r})\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 10:
            os.killpg(process.pid, signal.SIGKILL)  # the study and its workers, as a killed job
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    kept = len(journal.read_text().splitlines())
    assert 10 <= kept < 50  # stopped part way (50 distinct runs in all)
    resumed = large_batch(settings=SETTINGS, data_dir=data_dir, workers=2, journal=journal)
    straight = large_batch(settings=SETTINGS, data_dir=data_dir, workers=2)
    assert _rows(resumed) == _rows(straight)
    runs = [line for line in journal.read_text().splitlines() if line.endswith("}")]  # a killed write may be cut
    assert len(runs) == 50  # nothing trained twice
