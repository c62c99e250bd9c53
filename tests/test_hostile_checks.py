"""Cases an adversarial pass over issue 23 found: a checkpoint or summary that does not hold what was run is
refused before any file changes, readers bound what they read, a value the user gave is used, and every refusal
or interruption is one line."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import test_run_folder
from test_run_folder import REPO, contents, mark_interrupted, one_line, train
from test_train import edit_checkpoint

from lamb_edu import cli
from lamb_edu.train import RunFileError, files, run_lock
from lamb_edu.train.run_lock import LOCK_FILE, RunLock

synthetic = test_run_folder.synthetic  # the fixture: a synthetic MNIST for lamb-edu train in this process


def _edit_optimizer_state(folder: Path, edit) -> None:
    """Apply ``edit(state, arrays)`` to the optimizer state (its JSON and arrays) inside ``checkpoint.npz``."""
    path = folder / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    state = json.loads(str(members["optimizer/__json__"]))
    edit(state, members)
    members["optimizer/__json__"] = np.array(json.dumps(state))
    np.savez(path, **members)


def _interrupted_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train(out, "--epochs", "3", "--checkpoint-every", "4") == 0
    mark_interrupted(out, epochs=4)  # its checkpoint is at the end of epoch 3: one epoch left to run
    return out


def _refused(out: Path, capsys, named: str) -> None:
    before = contents(out)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 1
    assert named in one_line(capsys)
    assert contents(out) == before


def test_resume_refuses_optimizer_state_for_a_parameter_the_model_lacks(tmp_path, synthetic, capsys):
    out = _interrupted_run(tmp_path)
    _edit_optimizer_state(out, lambda state, arrays: state["state"].update({"7": state["state"]["0"]}))
    _refused(out, capsys, "the optimizer state is for parameters ['0', '1', '2', '3', '7']")


def test_resume_refuses_optimizer_state_that_lacks_a_parameter(tmp_path, synthetic, capsys):
    """Without its entry, parameter 0's m and v would start again from 0 at step 9: another result, silently."""
    def drop_first(state, arrays):
        del state["state"]["0"]
        for key in [key for key in arrays if key.startswith("optimizer/state/0/")]:
            del arrays[key]
    out = _interrupted_run(tmp_path)
    _edit_optimizer_state(out, drop_first)
    _refused(out, capsys, "it must be for all of ['0', '1', '2', '3']")


def test_resume_refuses_a_negative_second_moment(tmp_path, synthetic, capsys):
    """v averages squares: a negative one is damage (its square root is NaN), not a run that diverged."""
    def negative(state, arrays):
        arrays["optimizer/state/1/v"][0] = -1.0
    out = _interrupted_run(tmp_path)
    _edit_optimizer_state(out, negative)
    _refused(out, capsys, "optimizer/state/1/v holds a negative value")


def test_resume_refuses_a_summary_whose_log_every_it_would_not_log_at(tmp_path, synthetic, capsys):
    """The summary's log_every was kept and recorded while rows went on every 10 steps."""
    out = _interrupted_run(tmp_path)
    mark_interrupted(out, log_every=1)
    _refused(out, capsys, "settings.log_every = 1")


def test_resume_refuses_a_run_that_finished_while_it_waited_for_the_lock(tmp_path, synthetic, capsys, monkeypatch):
    """The summary was read before the lock: a run that finished in between was resumed again and rewritten."""
    out = _interrupted_run(tmp_path)
    acquire = RunLock.acquire

    def finish_then_acquire(lock):  # the process that held the folder finishes just before this one gets it
        document = json.loads((out / "summary.json").read_text())
        (out / "summary.json").write_text(json.dumps({**document, "status": "finished"}))
        acquire(lock)

    monkeypatch.setattr(RunLock, "acquire", finish_then_acquire)
    before = {**contents(out), "summary.json": None}
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 1
    assert "summary.json changed while this command started" in one_line(capsys)
    after = contents(out)
    assert json.loads(after.pop("summary.json"))["status"] == "finished"
    assert after == {key: value for key, value in before.items() if key != "summary.json"}


def test_ctrl_c_while_the_modules_load_is_one_line_not_a_traceback():
    """A Ctrl-C in the first second of ``python -m lamb_edu`` showed the traceback of the import it stopped."""
    interrupt_import = ("import builtins, runpy\n"
                        "real = builtins.__import__\n"
                        "def stopped(name, *args, **kwargs):\n"
                        "    if name == 'lamb_edu.cli':\n"
                        "        raise KeyboardInterrupt\n"
                        "    return real(name, *args, **kwargs)\n"
                        "builtins.__import__ = stopped\n"
                        "runpy.run_module('lamb_edu', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", interrupt_import, "train"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 130
    assert done.stderr == "lamb-edu: interrupted\n"


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole): what a crafted or runaway file could be."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _peak_bytes(action) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_an_oversized_summary_is_refused_before_it_is_read(tmp_path):
    path = _sparse(tmp_path / "summary.json", files.JSON_LIMIT + 1)

    def read():
        with pytest.raises(RunFileError, match=f"summary.json: holds {files.JSON_LIMIT + 1} bytes, more than"):
            files.read_json(path)
    assert _peak_bytes(read) < 2**20  # it was read whole (256 MB) before the parser failed on it


def test_plot_refuses_an_oversized_metrics_file_before_reading_it(tmp_path, synthetic, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    _sparse(out / "metrics.jsonl", files.TEXT_LIMIT + 1)
    capsys.readouterr()
    codes = []
    peak = _peak_bytes(lambda: codes.append(cli.main(["plot", str(out), "--out", str(tmp_path / "plot.png")])))
    assert codes == [1] and "metrics.jsonl: holds" in one_line(capsys)
    assert peak < 16 * 2**20


def test_a_lock_file_is_read_no_further_than_its_first_line(tmp_path):
    path = _sparse(tmp_path / LOCK_FILE, 2**29)
    assert _peak_bytes(lambda: run_lock._holder(path)) < 2**20


@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["sweep", "--batch-sizes", "64", "--lrs", "0.1"],
                                     ["reproduce", "debias"]])
def test_a_data_dir_that_is_not_a_folder_is_refused_not_passed_over(tmp_path, command, capsys):
    """A mistyped --data-dir was skipped for LAMB_EDU_DATA or the cache, and summary.json recorded it."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:  # argparse's exit
        cli.main([*command, "--data-dir", str(tmp_path / "typo"), "--out", str(out)])
    assert stopped.value.code == 2
    assert "argument --data-dir: " + str(tmp_path / "typo") + " is not a folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("edit, named", [
    (lambda epochs: epochs[0].update(test_accuracy=7.0), "test_accuracy 7.0 is not a fraction in [0, 1]"),
    (lambda epochs: epochs[1].update(steps=1), "epoch record 2: steps 1 is before the previous epoch's"),
])
def test_resume_refuses_epoch_records_no_run_writes(tmp_path, synthetic, capsys, edit, named):
    """An accuracy of 700 % or epochs going back in steps were carried into the finished summary."""
    out = _interrupted_run(tmp_path)
    edit_checkpoint(out, document=lambda document: edit(document["history"]["epochs"]))
    _refused(out, capsys, named)
