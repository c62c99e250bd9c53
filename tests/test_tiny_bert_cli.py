"""``lamb-edu train --model tiny-bert`` and ``lamb-edu fill`` through the command line, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> str:
    for root in (os.environ.get("LAMB_EDU_DATA"), str(REPO.parent / "shared" / "data")):
        if root and (Path(root) / "tinyshakespeare" / "input.txt").is_file():
            return root
    pytest.skip("needs tinyshakespeare/input.txt under LAMB_EDU_DATA (CI: ../shared/data)")


def run_cli(*args: str, root: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    if root is not None:
        environment["LAMB_EDU_DATA"] = root
    return subprocess.run([sys.executable, "-m", "lamb_edu", *args], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=timeout)


SMALL = ("--model", "tiny-bert", "--context", "32", "--d-model", "16", "--heads", "2", "--layers", "1",
         "--batch-size", "32", "--train-size", "256", "--epochs", "1", "--optimizer", "adamw", "--lr", "0.01")


def test_train_tiny_bert_writes_a_run_that_names_its_task_and_fill_reads_it(tmp_path):
    root = data_root()
    out = tmp_path / "run"
    result = run_cli("train", *SMALL, "--warmup-steps", "2", "--accumulate", "2", "--out", str(out), root=root)
    assert result.returncode == 0, result.stderr
    assert "tiny Shakespeare" in result.stdout and "bits/char" in result.stdout and "masked accuracy" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 8
    assert summary["task"]["name"] == "masked-lm" and summary["task"]["context"] == 32
    assert len(summary["task"]["vocabulary"]) == 65 and summary["task"]["train_windows"] == 1_003_854 // 32
    settings = summary["settings"]
    assert (settings["model"], settings["context"], settings["d_model"], settings["layers"], settings["heads"]) == \
        ("tiny-bert", 32, 16, 1, 2)
    assert settings["hidden"] is None and summary["final"]["bits_per_char"] > 0
    assert "layers.0.attention.query.weight" in summary["parameter_names"]

    filled = run_cli("fill", str(out), "To be, or n_t to be", "--top", "2")
    assert filled.returncode == 0, filled.stderr
    lines = filled.stdout.splitlines()
    assert lines[0] == "To be, or n_t to be" and lines[1][:11] + "_" + lines[1][12:] == lines[0]
    assert lines[2].startswith("_ at 11: ") and lines[2].count("%") == 2


@pytest.mark.parametrize("flags, message", [
    (("--hidden", "8"), "argument --hidden: does not apply to the tiny-bert model"),
    (("--heads", "3"), "argument --heads: must divide --d-model (16), got 3"),
    (("--train-size", "99999"), "argument --train-size: at most 31370, got 99999"),
])
def test_flags_that_do_not_apply_are_refused_with_one_line(tmp_path, flags, message):
    root = data_root()
    overrides = dict(zip(SMALL[::2], SMALL[1::2]))
    overrides.update(dict(zip(flags[::2], flags[1::2])))
    args = [item for pair in overrides.items() for item in pair]
    result = run_cli("train", *args, "--out", str(tmp_path / "run"), root=root)
    assert result.returncode == 2 and result.stderr.strip().endswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_mnist_models_refuse_the_tiny_bert_flags():
    result = run_cli("train", "--model", "mlp", "--context", "16")
    assert result.returncode == 2 and "argument --context: does not apply to the mlp model" in result.stderr


def test_a_corrupt_text_file_is_one_error_and_nothing_is_written(tmp_path):
    bad = tmp_path / "text"
    bad.mkdir()
    (bad / "input.txt").write_text("First Citizen:\nthis is not the whole play\n")
    result = run_cli("train", *SMALL, "--data-dir", str(bad), "--out", str(tmp_path / "run"), root=str(tmp_path))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert str(bad / "input.txt") in result.stderr and "not the canonical file" in result.stderr
    assert not (tmp_path / "run").exists()


def test_fill_refuses_a_run_of_another_model_and_a_bad_text(tmp_path):
    root = data_root()
    out = tmp_path / "run"
    assert run_cli("train", *SMALL, "--out", str(out), root=root).returncode == 0
    bad = run_cli("fill", str(out), "To be, or n_t to be {}")
    assert bad.returncode == 2 and "'{}' are not in the model's 65-character vocabulary" in bad.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary["settings"]["model"] = "mlp"
    (out / "summary.json").write_text(json.dumps(summary))
    other = run_cli("fill", str(out), "n_t")
    assert other.returncode == 2 and "fill needs a tiny-bert run" in other.stderr


@pytest.mark.slow
def test_the_issue_s_run_reaches_the_most_frequent_character_baseline(tmp_path):
    """The issue's command: one epoch of 8000 windows at batch 64 beats always guessing a space (15.2 %)."""
    root = data_root()
    out = tmp_path / "run"
    result = run_cli("train", "--model", "tiny-bert", "--epochs", "1", "--train-size", "8000", "--batch-size", "64",
                     "--optimizer", "adamw", "--lr", "0.003", "--warmup-steps", "12", "--out", str(out), root=root,
                     timeout=1200)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["final"]["test_accuracy"] >= 0.152


@pytest.mark.slow
@pytest.mark.mpi
def test_two_ranks_plain_and_sharded_train_the_tiny_bert_as_one_process(tmp_path):
    """``--data-parallel`` and ``--shard-optimizer`` take the masked-LM task too, with one process's numbers."""
    import shutil

    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not installed")
    root = data_root()
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
                   "LAMB_EDU_DATA": root}
    finals = {}
    for name, launch in (("one", []), ("plain", ["mpiexec", "-n", "2"]), ("sharded", ["mpiexec", "-n", "2"])):
        flags = [] if name == "one" else ["--data-parallel"] + (["--shard-optimizer"] if name == "sharded" else [])
        out = tmp_path / name
        command = [*launch, sys.executable, "-m", "lamb_edu", "train", *SMALL, *flags, "--out", str(out)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=300)
        assert result.returncode == 0, result.stderr
        finals[name] = json.loads((out / "summary.json").read_text())["final"]
    for name in ("plain", "sharded"):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert finals[name][key] == pytest.approx(finals["one"][key], rel=1e-4, abs=1e-6), (name, key)
