"""The run folder's promises: nothing lost, nothing silently changed, one writer, two runs never mixed.

Most tests run ``lamb-edu train`` in this process on a small synthetic MNIST (``synthetic``); the kill
test starts real processes and SIGKILLs them at random moments.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_train import synthetic_mnist  # the same synthetic digits as the loop's tests

from lamb_edu import cli, nn, optim
from lamb_edu.cli import run_setup, sweep_command, train_run
from lamb_edu.cli.train_parallel import _claim, _Setup
from lamb_edu.cli.values import CommandError
from lamb_edu.train import RunFileError, checkpoint_file, files, read_checkpoint, save_checkpoint
from lamb_edu.train.history import History
from lamb_edu.train.position import Position
from lamb_edu.train.run_folder import MetricsLog
from lamb_edu.train.run_lock import LOCK_FILE, RunFolderBusy, RunLock, folder_state

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "2", "--train-size", "300", "--batch-size", "100", "--hidden", "16"]


@pytest.fixture
def synthetic(monkeypatch):
    """``lamb-edu train`` in this process reads a synthetic MNIST instead of the real files."""
    data = synthetic_mnist()
    monkeypatch.setattr(run_setup, "load_mnist", lambda directory=None: data)
    return data


def train(out, *extra):
    return cli.main(["train", *SMALL, "--out", str(out), *extra])


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def mark_interrupted(folder: Path, **settings) -> None:
    document = summary(folder)
    document["settings"].update(settings)
    (folder / "summary.json").write_text(json.dumps({**document, "status": "interrupted"}))


def one_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error


# ----------------------------------------------------------------------------- 1: an explicit 0 is a value
@pytest.mark.parametrize("argv, setting, value", [
    (["--optimizer", "adamw", "--weight-decay", "0"], "weight_decay", 0.0),
    (["--optimizer", "lars", "--momentum", "0"], "momentum", 0.0),
    (["--optimizer", "adam", "--beta1", "0", "--beta2", "0"], "beta1", 0.0),
    (["--optimizer", "adam", "--beta2", "0"], "beta2", 0.0),
    (["--optimizer", "lamb", "--eps", "0"], "eps", 0.0),
    (["--optimizer", "sgd", "--lr", "0"], "lr", 0.0),
])
def test_an_explicit_zero_is_used_and_recorded(argv, setting, value):
    for command in ("train", "sweep") if setting != "lr" else ("train",):  # a sweep takes --lrs
        extra = ["--batch-sizes", "8", "--lrs", "0.1"] if command == "sweep" else []
        args = cli.build_parser().parse_args([command, *argv, *extra])
        settings = cli.train_settings(args)
        assert settings[setting] == value and settings[setting] is not None
        optimizer = cli.build_optimizer(settings, list(nn.MLP([4, 3], seed=0).named_parameters()))
        group = optimizer.param_groups[0]
        betas = group.get("betas", (None, None))
        expected = betas[0] if setting == "beta1" else betas[1] if setting == "beta2" else group[setting]
        assert expected == value


def test_a_zero_given_to_an_optimizer_without_that_setting_is_refused(capsys):
    assert cli.main(["train", "--optimizer", "adam", "--momentum", "0"]) == 2
    assert "--momentum" in one_line(capsys)
    assert cli.main(["sweep", "--optimizer", "adam", "--momentum", "0", "--batch-sizes", "8", "--lrs", "0.1"]) == 2
    assert "--momentum" in one_line(capsys)


# ----------------------------------------------------------------------------- 2: the checkpoint is one atomic unit
class Killed(BaseException):
    """The process dies here: nothing after it runs (not even except clauses for Exception)."""


def _checkpoint_once(directory, model, optimizer, step):
    position = Position(epoch=0, batch=step, step=step, epoch_examples=step * 10, batch_size=10, train_size=100)
    history = History([name for name, _ in model.named_parameters()], step_loss=[1.0] * step)
    save_checkpoint(directory, model, optimizer, history, position)


def test_a_kill_between_any_two_checkpoint_writes_keeps_a_complete_checkpoint(tmp_path, monkeypatch):
    """The old checkpoint.npz then checkpoint.json lost the run when killed between the two renames."""
    model = nn.MLP([784, 8, 10], seed=0)
    optimizer = optim.LAMB(model.named_parameters(), lr=0.01)
    _checkpoint_once(tmp_path, model, optimizer, 3)
    real_replace, calls, fault_at = os.replace, [], None

    def dying_replace(source, target):
        calls.append(target)
        if len(calls) == fault_at:
            raise Killed
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", dying_replace)
    for fault in (1, 2, 3):  # before the .npz's rename, before the readable copy's, none
        calls.clear()
        fault_at = fault
        try:
            _checkpoint_once(tmp_path, model, optimizer, 5)
        except Killed:
            pass
        fault_at = None
        step = read_checkpoint_step(tmp_path, model, optimizer)
        assert step == (3 if fault == 1 else 5)
        assert len(calls) == (1 if fault == 1 else 2)  # one checkpoint is two writes: the .npz, then its copy
        _checkpoint_once(tmp_path, model, optimizer, 3)  # back to step 3 for the next fault


def read_checkpoint_step(directory, model, optimizer):
    return read_checkpoint(directory, model, optimizer).position.step


@pytest.mark.slow
def test_a_fault_between_any_two_writes_of_a_run_leaves_it_resumable(tmp_path, synthetic, monkeypatch, capsys):
    """Stop the process at every write of a whole run in turn; `--resume` then ends where a straight run ends."""
    args = ["--checkpoint-every", "2"]
    assert train(tmp_path / "straight", *args) == 0
    expected = np.load(tmp_path / "straight" / "checkpoint.npz")
    real_replace, real_write, count = os.replace, MetricsLog.write, {"writes": 0, "fault_at": 0}

    def tick():
        count["writes"] += 1
        if count["writes"] == count["fault_at"]:
            raise Killed

    def dying_replace(source, target):
        tick()
        real_replace(source, target)

    def dying_write(self, event):
        tick()
        real_write(self, event)

    monkeypatch.setattr(files.os, "replace", dying_replace)
    monkeypatch.setattr(MetricsLog, "write", dying_write)
    count["fault_at"] = 10**9
    assert train(tmp_path / "counted", *args) == 0
    total = count["writes"]
    assert total > 10
    for fault_at in range(1, total + 1):
        out = tmp_path / f"fault-{fault_at}"
        count.update(writes=0, fault_at=fault_at)
        with pytest.raises(Killed):
            train(out, *args)
        count["fault_at"] = 10**9
        (out / LOCK_FILE).unlink(missing_ok=True)  # the dead process's lock (a real kill leaves it stale)
        capsys.readouterr()
        code = cli.main(["train", "--resume", str(out)])
        if code != 0:  # killed before its first checkpoint: nothing to keep, and it says so
            error = capsys.readouterr().err
            assert code == 1 and ("no checkpoint" in error or "summary.json is missing" in error), error
            assert fault_at <= 4  # the summary, the header line, the first step's line, the first checkpoint
            continue
        with np.load(out / "checkpoint.npz") as got:
            for key in expected.files:
                if key != "checkpoint":
                    np.testing.assert_array_equal(got[key], expected[key])
        assert summary(out)["status"] == "finished"


@pytest.mark.slow
@pytest.mark.mnist
def test_random_sigkills_never_lose_the_run(tmp_path):
    """SIGKILL `lamb-edu train` at random moments, resume each time: it ends bit-identical to a straight run."""
    data_dir = os.environ.get("LAMB_EDU_DATA")
    if not data_dir or not Path(data_dir).is_dir():
        pytest.skip("real MNIST needed (LAMB_EDU_DATA)")
    settings = ["--epochs", "2", "--train-size", "3000", "--batch-size", "20", "--hidden", "16",
                "--checkpoint-every", "1"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    out, straight = tmp_path / "run", tmp_path / "straight"
    rng = random.Random(int(os.environ.get("LAMB_EDU_KILL_SEED", "23")))

    def start(*argv):
        return subprocess.Popen([sys.executable, "-m", "lamb_edu", "train", *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=environment)

    def resumable():
        return (out / "checkpoint.npz").is_file() and (out / "summary.json").is_file()

    began = time.monotonic()
    reference = start(*settings, "--out", str(straight))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    duration = time.monotonic() - began  # kills land anywhere from start-up to the last results
    kills = 0
    for _ in range(8):
        process = start("--resume", str(out)) if resumable() else start(*settings, "--out", str(out), "--overwrite")
        try:
            process.wait(timeout=rng.uniform(0.1, 0.5) * duration)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            kills += 1
            continue
        assert process.returncode == 0, process.stderr.read()
        break
    else:  # the last kill's folder, continued to the end
        argv = ["--resume", str(out)] if resumable() else [*settings, "--out", str(out), "--overwrite"]
        finished = subprocess.run([sys.executable, "-m", "lamb_edu", "train", *argv], env=environment,
                                  capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr
    print(f"{kills} kills in a run of {duration:.1f} s")
    assert kills >= 1 and summary(out)["status"] == "finished" and not (out / LOCK_FILE).exists()
    assert not [path.name for path in out.iterdir() if path.name.endswith(".part")]  # a killed writer's, removed
    with np.load(straight / "checkpoint.npz") as expected, np.load(out / "checkpoint.npz") as got:
        assert sorted(got.files) == sorted(expected.files)
        for key in expected.files:
            if key != "checkpoint":  # the document holds the seconds each run took
                np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    steps = [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"type": "step"' in line]
    expected_steps = [line for line in (straight / "metrics.jsonl").read_text().splitlines()
                      if '"type": "step"' in line]
    assert len(steps) == 31 and steps == expected_steps  # every logged step once: none lost, none twice


# ----------------------------------------------------------------------------- 3: quick never replaces full
def test_reproduce_quick_refuses_a_folder_of_full_results(tmp_path, capsys, monkeypatch):
    results = {"debias": {"mode": "full", "steps": 123}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    before = contents(tmp_path)
    assert cli.main(["reproduce", "debias", "--quick", "--out", str(tmp_path)]) == 2
    error = one_line(capsys)
    assert "full results of debias" in error and "--force" in error
    assert contents(tmp_path) == before

    class Ran(BaseException):
        pass

    def run_experiment(*args, **kwargs):
        raise Ran

    monkeypatch.setattr(cli.reproduce_command.experiments, "run_experiment", run_experiment)
    with pytest.raises(Ran):  # --force goes on to run it
        cli.main(["reproduce", "debias", "--quick", "--force", "--out", str(tmp_path)])


# ----------------------------------------------------------------------------- 4, 12: resume with the settings it ran
@pytest.mark.parametrize("flags, edit, named", [
    ([], {"weight_decay": 0.5}, "weight_decay"),
    ([], {"eps": 1e-3}, "eps"),
    ([], {"lr": 0.5}, "lr"),
    ([], {"seed": 7}, "seed"),
    ([], {"warmup_steps": 3}, "scheduler"),
    (["--warmup-steps", "3"], {"lr": 0.02}, "base_lrs"),
    (["--lookahead", "2"], {"lookahead": 3}, "lookahead k"),
    (["--epochs", "3"], {"epochs": 1}, "settings.epochs is 1"),
])
def test_resume_refuses_settings_its_checkpoint_did_not_run_and_changes_nothing(tmp_path, synthetic, capsys, flags,
                                                                                 edit, named):
    """The summary's settings are the run's: a checkpoint that ran others is refused before any file changes."""
    out = tmp_path / "run"
    assert train(out, "--checkpoint-every", "4", *flags) == 0  # its last checkpoint: step 6 (or 9), in epoch 2 (3)
    mark_interrupted(out, **edit)
    before = contents(out)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 1
    assert named in one_line(capsys)
    assert contents(out) == before  # summary.json not rewritten, metrics.jsonl not trimmed


def test_resume_refuses_a_garbage_metrics_line_before_changing_anything(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    mark_interrupted(out)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")
    before = contents(out)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 1
    assert "metrics.jsonl, line 2" in one_line(capsys)
    assert contents(out) == before


def test_resume_keeps_a_torn_last_metrics_line_out(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    reference = (out / "metrics.jsonl").read_text()
    mark_interrupted(out)
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write('{"type": "step", "st')  # a kill in the middle of a line
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert (out / "metrics.jsonl").read_text() == reference


# ----------------------------------------------------------------------------- 6: plot never mixes two runs
@pytest.mark.parametrize("old_files", [False, True], ids=["run-ids", "files-before-run-ids"])
def test_plot_refuses_a_folder_mixing_two_runs(tmp_path, synthetic, capsys, old_files):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train(first) == 0 and train(second, "--seed", "1") == 0
    if old_files:  # no run id anywhere: the epoch records still tell the runs apart
        for folder in (first, second):
            document = summary(folder)
            document.pop("run_id")
            document.pop("nonfinite_step")
            document["diverged"] = False  # as summaries before 0.2 said
            document["verdict"]["status"] = document["verdict"].pop("outcome")
            (folder / "summary.json").write_text(json.dumps(document))
            lines = (folder / "metrics.jsonl").read_text().splitlines()[1:]
            (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert cli.main(["plot", str(first), "--out", str(tmp_path / "ok.png")]) == 0
    (first / "metrics.jsonl").write_bytes((second / "metrics.jsonl").read_bytes())
    capsys.readouterr()
    assert cli.main(["plot", str(first), "--out", str(tmp_path / "x.png")]) == 1
    assert "different runs" in one_line(capsys) and not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- 7: --overwrite deletes a run's files
def test_overwrite_keeps_a_users_part_file_and_deletes_nothing(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    (out / "thesis.part").write_text("mine")
    before = contents(out)
    capsys.readouterr()
    assert train(out, "--overwrite") == 2
    assert "thesis.part" in one_line(capsys)
    assert contents(out) == before


def test_overwrite_checks_every_file_before_deleting_any(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    (out / "summary.json").unlink()
    (out / "summary.json").mkdir()
    before = contents(out)
    capsys.readouterr()
    assert train(out, "--overwrite") == 2
    assert "summary.json is not a plain file" in one_line(capsys)
    assert contents(out) == before and "metrics.jsonl" in before
    (out / "summary.json").rmdir()
    (out / ".metrics.jsonl.4242.part").write_text("left by a killed writer")
    assert train(out, "--overwrite") == 0 and not (out / ".metrics.jsonl.4242.part").exists()


# ----------------------------------------------------------------------------- 8: one writer per run folder
def test_a_folder_another_live_process_writes_is_refused(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    mark_interrupted(out)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        before = contents(out)
        capsys.readouterr()
        assert cli.main(["train", "--resume", str(out)]) == 1
        assert f"in use by process {sleeper.pid}" in one_line(capsys)
        assert train(tmp_path / "run", "--overwrite") == 1
        assert "in use by process" in one_line(capsys)
        assert contents(out) == before
        assert cli.main(["reproduce", "debias", "--quick", "--out", str(out)]) == 1
        assert "in use by process" in one_line(capsys) and not (out / "results.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)
    assert cli.main(["train", "--resume", str(out)]) == 0  # its process is gone: the lock is stale
    assert not (out / LOCK_FILE).exists()


def test_a_process_of_an_mpi_job_without_data_parallel_is_refused(tmp_path, synthetic, capsys, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    assert train(tmp_path / "run") == 2
    assert "--data-parallel" in one_line(capsys) and not (tmp_path / "run").exists()


@pytest.mark.mpi
def test_mpiexec_without_data_parallel_trains_nothing_into_the_folder(tmp_path):
    """Two copies of one run would write one folder: each process refuses, in about the time to start."""
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not installed")
    out = tmp_path / "run"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    command = ["mpiexec", "-n", "2", sys.executable, "-m", "lamb_edu", "train", *SMALL, "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # every rank refuses alike, so the ranks agree on it and rank 0 prints it once
    assert len(lines) == 1 and all("--data-parallel" in line and "one of 2 processes" in line for line in lines)
    assert not out.exists()


# ----------------------------------------------------------------------------- 14: the smaller ones
def test_ctrl_c_while_results_are_written_leaves_a_resumable_run(tmp_path, synthetic, capsys, monkeypatch):
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_run, "save_figure", interrupted)
        assert train(out) == 130
    error = capsys.readouterr().err
    assert f"lamb-edu train --resume {out}" in error and summary(out)["status"] == "interrupted"
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert summary(out)["status"] == "finished" and (out / "curves.png").is_file()


def test_deeply_nested_json_is_one_line_naming_the_file(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    (out / "summary.json").write_text("[" * 200000)
    capsys.readouterr()
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "x.png")]) == 1
    error = one_line(capsys)
    assert str(out / "summary.json") in error and "nested too deeply" in error


def test_sweep_trains_each_grid_value_once(tmp_path, synthetic, monkeypatch):
    seen = {}

    class Swept(BaseException):
        pass

    def fake_sweep(*args, **kwargs):
        seen.update(batch_sizes=kwargs["batch_sizes"], lrs=kwargs["lrs"])
        raise Swept

    monkeypatch.setattr(sweep_command, "sweep", fake_sweep)
    monkeypatch.setattr(sweep_command, "load_mnist", lambda directory=None: synthetic_mnist(train=400))
    with pytest.raises(Swept):
        cli.main(["sweep", "--batch-sizes", "8", "16", "8", "--lrs", "0.1", "0.1", "0.2", "--validation-size", "100",
                  "--out", str(tmp_path / "sweep")])
    assert seen == {"batch_sizes": [8, 16], "lrs": [0.1, 0.2]}


@pytest.mark.parametrize("argv", [["sweep", "--lrs", "0.1", "--lr", "0.1", "--batch-sizes", "8"],
                                  ["train", "--optim", "sgd"], ["train", "--over"], ["reproduce", "debias", "--qu"]])
def test_flags_are_never_abbreviated(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 10: bounded reads
def test_checkpoint_members_are_checked_by_name_and_header_before_reading(tmp_path):
    model = nn.MLP([784, 8, 10], seed=0)
    optimizer = optim.LAMB(model.named_parameters(), lr=0.01)
    _checkpoint_once(tmp_path, model, optimizer, 3)
    path = tmp_path / "checkpoint.npz"
    with np.load(path) as npz:
        members = {key: npz[key] for key in npz.files}
    for extra, problem in (({"junk": np.zeros(10**6, dtype=np.uint8)}, "unexpected member 'junk'"),
                           ({"optimizer/state/0/m": np.zeros(3 * 10**6, dtype=np.float32)}, "a parameter's shape"),
                           ({"model/layers.0.bias": np.zeros((8, 8), dtype=np.float32)}, "the parameter is float")):
        np.savez_compressed(path, **{**members, **extra})
        read = []
        with pytest.MonkeyPatch.context() as patch:  # which members were decompressed before the refusal
            real = checkpoint_file._read_member
            patch.setattr(checkpoint_file, "_read_member", lambda path, archive, name, rule: (
                read.append(name), real(path, archive, name, rule))[1])
            with pytest.raises(RunFileError, match=problem):
                read_checkpoint_step(tmp_path, model, optimizer)
        assert read == ["checkpoint"] if "junk" in extra else read[-1] in extra  # the bad one: its header only


def test_a_lock_file_holds_the_pid_and_host_while_training(tmp_path, synthetic, monkeypatch):
    out, seen = tmp_path / "run", {}
    real = train_run.fit_run

    def peek(*args, **kwargs):
        seen.update(json.loads((out / LOCK_FILE).read_text()))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_run, "fit_run", peek)
    assert train(out) == 0
    assert seen["pid"] == os.getpid() and isinstance(seen["host"], str) and not (out / LOCK_FILE).exists()





def test_a_data_parallel_resume_refuses_a_folder_that_changed_before_its_lock(tmp_path):
    """Every rank reads the checkpoint before rank 0 can lock the folder; a writer finishing in between made
    the job resume from an out-of-date checkpoint and write over the newer one."""
    (tmp_path / "summary.json").write_text('{"status": "interrupted"}')
    read = folder_state(tmp_path)
    setup = _Setup(SimpleNamespace(out=tmp_path, resuming=True), None, None, None, "the point read", read)
    args = SimpleNamespace(overwrite=False)
    first = RunLock(tmp_path)
    assert _claim(first, args, setup) == "the point read"  # unchanged: the job goes on
    first.release()
    time.sleep(0.01)
    (tmp_path / "summary.json").write_text('{"status": "finished"}')  # another writer, in between
    lock = RunLock(tmp_path)
    with pytest.raises(CommandError, match="changed while this job was starting"):
        _claim(lock, args, setup)
    assert not (tmp_path / LOCK_FILE).exists()  # the lock is given back
    assert json.loads((tmp_path / "summary.json").read_text()) == {"status": "finished"}  # nothing written


@pytest.mark.slow
def test_two_takeovers_of_one_stale_lock_leave_one_writer(tmp_path):
    """Both read the dead writer's lock; the slower one then deleted the faster one's new lock and took the
    folder too. Here the child reads the stale holder slowly; the test process takes over meanwhile."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    child = subprocess.Popen([sys.executable, "-c", f"""
import time
from lamb_edu.train import run_lock
read = run_lock._holder
def slow(path):
    holder = read(path)
    time.sleep(1.0)  # the other process takes over meanwhile (or waits for its turn)
    return holder
run_lock._holder = slow
lock = run_lock.RunLock({str(tmp_path)!r})
try:
    lock.acquire()
except run_lock.RunFolderBusy:
    print("busy", flush=True)
else:
    print("held", flush=True)
    time.sleep(1.5)
    lock.release()
"""], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    time.sleep(0.5)  # the child is inside its slow read of the stale lock
    lock = RunLock(tmp_path)
    try:
        lock.acquire()
        mine = "held"
    except RunFolderBusy:
        mine = "busy"
    try:
        out, _ = child.communicate(timeout=60)
    finally:
        if mine == "held":
            lock.release()
    assert sorted([mine, out.strip()]) == ["busy", "held"]  # one writer, one refusal
