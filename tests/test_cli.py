"""`lamb-edu train` and `lamb-edu plot`: end to end in a subprocess, and the error paths."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import cli, nn, optim, plots
from lamb_edu.cli.settings import train_settings
from lamb_edu.data import load_mnist
from lamb_edu.train import fit

REPO = Path(__file__).resolve().parents[1]
NAMES = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def real_data_dir() -> str:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the data root (or the folder) with the four IDX files "
                    "(CI uses ../shared/data)")
    return directory


def run_cli(*args, cwd=None, env=None):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lamb_edu", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=environment, timeout=120)


def read_metrics(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.mnist
def test_train_end_to_end_writes_every_file(tmp_path):
    real_data_dir()
    out = tmp_path / "run"
    result = run_cli("train", "--optimizer", "lamb", "--lr", "0.02", "--epochs", "2", "--batch-size", "100",
                     "--train-size", "1000", "--hidden", "32", "--weight-decay", "0.01", "--seed", "3",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and "test accuracy" in epoch_lines[0]

    summary = json.loads((out / "summary.json").read_text())
    settings = summary["settings"]
    chosen = ("optimizer", "lr", "batch_size", "hidden", "weight_decay", "eps", "beta2", "train_size")
    assert [settings[key] for key in chosen] == ["lamb", 0.02, 100, [32], 0.01, 1e-6, 0.999, 1000]
    assert summary["status"] == "finished" and summary["nonfinite_step"] is None
    assert summary["steps"] == 20 and summary["seconds"] > 0

    # The same run in this process gives the same numbers: the flags reached the optimizer and the loop.
    model = nn.MLP([784, 32, 10], seed=3)
    history = fit(model, optim.LAMB(model.named_parameters(), lr=0.02, weight_decay=0.01, eps=1e-6), load_mnist(),
                  2, 100, seed=3, train_size=1000, log_every=10, progress=False)
    assert summary["final"]["test_accuracy"] == pytest.approx(history.epochs[-1]["test_accuracy"], abs=1e-12)
    assert summary["final"]["train_loss"] == pytest.approx(history.epochs[-1]["train_loss"], rel=1e-6)
    assert 0.7 < summary["final"]["test_accuracy"] <= 1.0

    metrics = read_metrics(out)
    steps = [m for m in metrics if m["type"] == "step"]
    epochs = [m for m in metrics if m["type"] == "epoch"]
    assert [m["step"] for m in steps] == [1, 10, 20] and [m["epoch"] for m in epochs] == [1, 2]
    assert steps[1]["loss_avg"] == pytest.approx(np.mean(history.step_loss[1:10]), rel=1e-6)
    assert set(steps[0]["trust_ratio"]) == set(NAMES)
    assert epochs[-1]["test_accuracy"] == summary["final"]["test_accuracy"]

    with np.load(out / "trust.npz", allow_pickle=False) as trust:
        assert list(trust["steps"]) == [1, 10, 20] and list(trust["names"]) == NAMES
        for name in NAMES:
            ratio = trust[f"{name}/weight_norm"] / trust[f"{name}/ratio_denominator"]
            np.testing.assert_allclose(trust[f"{name}/trust_ratio"], ratio, rtol=1e-5)
        np.testing.assert_allclose(trust["layers.0.weight/trust_ratio"], np.asarray(history.trust_ratio)[:, 0],
                                   rtol=1e-6)
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]

    # a second run with other settings, then both overlaid
    other = tmp_path / "other"
    result = run_cli("train", "--optimizer", "adam", "--epochs", "1", "--batch-size", "200", "--train-size", "600",
                     "--hidden", "16", "--lookahead", "3", "--warmup-steps", "2", "--out", str(other))
    assert result.returncode == 0, result.stderr
    summary = json.loads((other / "summary.json").read_text())
    assert (summary["settings"]["lookahead"], summary["settings"]["warmup_steps"]) == (3, 2)
    header, first_step = read_metrics(other)[:2]
    assert header == {"type": "run", "run_id": summary["run_id"]}
    assert first_step["step"] == 1 and first_step["lr"] == pytest.approx(0.001 / 2)  # warm-up: lr·(0+1)/2
    assert "trust_ratio" not in first_step and set(first_step["weight_norm"]) == set(NAMES)
    image = tmp_path / "both.png"
    result = run_cli("plot", str(out), str(other), "--out", str(image))
    assert result.returncode == 0, result.stderr
    assert image.read_bytes()[:8] == PNG_MAGIC


def test_bad_flags_exit_2_with_one_line_and_no_traceback():
    result = run_cli("train", "--lr", "-1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and "--lr" in error_lines[0] and "-1" in error_lines[0]


@pytest.mark.parametrize("argv, named", [
    (["train", "--optimizer", "nadam"], "--optimizer"),
    (["train", "--beta1", "1.0"], "--beta1"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--epochs", "two"], "--epochs"),
    (["train", "--eps", "nan"], "--eps"),
    (["train", "--hidden", "256", "0"], "--hidden"),
    (["train", "--backend", "tpu"], "--backend"),
    (["plot"], "DIR"),
])
def test_argparse_rejects_bad_values(argv, named, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [
    (["train", "--optimizer", "adam", "--momentum", "0.9"], "--momentum"),
    (["train", "--optimizer", "sgd", "--no-trust-ratio"], "--no-trust-ratio"),
    (["train", "--optimizer", "sgd", "--nesterov"], "--nesterov"),
    (["train", "--optimizer", "adagrad", "--beta1", "0.9"], "--beta1"),
])
def test_flags_that_do_not_apply_exit_2(argv, named, capsys):
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert named in error and error.count("\n") == 1 and "Traceback" not in error


def test_missing_data_exits_1_with_the_loader_message(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAMB_EDU_DATA", str(empty))
    monkeypatch.setenv("LAMB_EDU_MNIST_MIRRORS", "http://127.0.0.1:9/")  # the discard port: refused at once
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    for expected in ("train-images-idx3-ubyte", str(empty), "LAMB_EDU_DATA", "--data-dir"):
        assert expected in error
    assert not (tmp_path / "run").exists()


def test_missing_cupy_exits_1_with_one_line(capsys):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: the missing-CuPy message cannot be shown here")
    assert cli.main(["train", "--backend", "cupy", "--epochs", "1"]) == 1
    error = capsys.readouterr().err
    assert "CuPy" in error and "pip install cupy" in error and error.count("\n") == 1


@pytest.mark.mnist
def test_divergence_is_a_result_not_a_crash(tmp_path, monkeypatch, capsys):
    real_data_dir()
    monkeypatch.chdir(tmp_path)  # the default --out is runs/... under the working directory
    assert cli.main(["train", "--optimizer", "adam", "--lr", "1e20", "--epochs", "2", "--train-size", "500",
                     "--batch-size", "100", "--hidden", "16"]) == 0
    assert "diverged at step 2" in capsys.readouterr().out
    (out,) = (tmp_path / "runs").iterdir()
    assert out.name.startswith("adam-lr1e+20-bs100-")
    summary = json.loads((out / "summary.json").read_text())  # strict JSON: NaN became null
    assert summary["nonfinite_step"] == 2 and summary["final"]["test_loss"] is None and len(summary["epochs"]) == 1
    assert summary["verdict"]["step"] == 2 and "not finite" in summary["verdict"]["reasons"][0]
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
@pytest.mark.mnist
def test_divergence_without_nan_is_reported(tmp_path, capsys):
    """The article's LAMB at lr 0.1: it learns, then the loss returns to chance level with finite numbers."""
    real_data_dir()
    assert cli.main(["train", "--optimizer", "lamb", "--lr", "0.1", "--epochs", "3", "--out", str(tmp_path)]) == 0
    assert "learned, then diverged at step" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["nonfinite_step"] is None  # no NaN or inf anywhere
    assert summary["verdict"]["outcome"] == "diverged" and summary["verdict"]["lowest_loss"] < 1.0
    assert summary["final"]["test_accuracy"] < 0.2  # back to about chance (10 classes)


def test_plot_reports_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 1
    error = capsys.readouterr().err
    assert "summary.json" in error and str(tmp_path) in error and error.count("\n") == 1


def test_legend_names_only_settings_that_differ():
    base = {"optimizer": "lamb", "lr": 0.01, "batch_size": 512, "weight_decay": 0.0, "beta1": 0.9, "seed": 0}
    labels = plots.settings_labels([base, {**base, "weight_decay": 0.01}, {**base, "optimizer": "sgd", "beta1": None}])
    assert labels == ["lamb lr=0.01 weight_decay=0.0", "lamb lr=0.01 weight_decay=0.01", "sgd lr=0.01 weight_decay=0.0"]
    labels = plots.settings_labels([{**base, "no_trust_ratio": True}, {**base, "no_trust_ratio": False}])
    assert labels == ["lamb lr=0.01 no-trust-ratio", "lamb lr=0.01"]
    settings = cli.train_settings(cli.build_parser().parse_args(["train", "--optimizer", "lamb"]))
    assert math.isclose(settings["eps"], 1e-6)


# ----------------------------------------------------------------------------- the run folder
SMALL = ["--epochs", "1", "--train-size", "300", "--batch-size", "100", "--hidden", "16"]


def _train(out, *extra):
    return cli.main(["train", *SMALL, "--out", str(out), *extra])


def test_a_folder_that_is_not_empty_is_refused_unless_overwrite(tmp_path, capsys):
    real_data_dir()
    out = tmp_path / "run"
    assert _train(out) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["status"] == "finished" and first["settings"]["model"] == "mlp"
    assert first["architecture"]["parameters"][0] == ["layers.0.weight", [16, 784]]
    capsys.readouterr()
    assert _train(out, "--lr", "0.05") == 2  # the earlier run is not touched
    error = capsys.readouterr().err
    assert "--out" in error and "not empty" in error and "--overwrite" in error and error.count("\n") == 1
    assert json.loads((out / "summary.json").read_text()) == first
    assert _train(out, "--lr", "0.05", "--overwrite") == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["lr"] == 0.05
    (out / "notes.txt").write_text("mine")
    assert _train(out, "--overwrite") == 2 and (out / "notes.txt").exists()
    assert "notes.txt" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named, code", [
    (["--accumulate", "0"], "--accumulate", 2),
    (["--batch-size", "100", "--accumulate", "101"], "--accumulate", 2),
    (["--batch-size", "301"], "--batch-size", 2),
    (["--hidden", "8", "--model", "mlp", "--resume", "x"], "--resume", 2),
])
def test_bad_run_flags_exit_2_with_one_line(tmp_path, capsys, argv, named, code):
    real_data_dir()
    base = ["train", "--epochs", "1", "--train-size", "300", "--out", str(tmp_path / "run")]
    try:
        assert cli.main([*base, *argv]) == code
    except SystemExit as caught:  # argparse's own check
        assert caught.code == code
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_lr_1e308_in_one_step_is_divergence(tmp_path, capsys):
    real_data_dir()
    assert cli.main(["train", "--optimizer", "sgd", "--lr", "1e308", "--epochs", "1", "--train-size", "100",
                     "--batch-size", "100", "--hidden", "8", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["nonfinite_step"] == 1 and summary["verdict"]["outcome"] == "diverged"
    assert "diverged at step 1" in capsys.readouterr().out


def test_every_optimizer_in_the_registry_builds_with_its_defaults():
    for name, entry in cli.OPTIMIZERS.items():
        settings = cli.train_settings(cli.build_parser().parse_args(["train", "--optimizer", name]))
        model = nn.MLP([4, 3], seed=0)
        optimizer = cli.build_optimizer(settings, list(model.named_parameters()))
        assert type(optimizer).__name__ == entry.class_name
        group = optimizer.param_groups[0]
        assert group["lr"] == entry.defaults["lr"] and group["weight_decay"] == entry.defaults["weight_decay"]
        for setting, keyword in (("eps", "eps"), ("momentum", "momentum")):
            if setting in entry.defaults:
                assert group[keyword] == entry.defaults[setting]
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "for sgd/lars" in " ".join(help_text.split())  # --nesterov, derived from the registry


# ----------------------------------------------------------------------------- plot and reproduce check their inputs
def _finished_run(tmp_path):
    out = tmp_path / "run"
    assert _train(out) == 0
    return out


@pytest.mark.parametrize("damage, named", [
    (lambda out: (out / "summary.json").write_text("[1, 2]"), "summary.json: must hold a JSON object"),
    (lambda out: (out / "summary.json").write_text("{not json"), "summary.json is not valid JSON"),
    (lambda out: (out / "summary.json").write_text('{"status": "finished", "settings": []}'), "settings"),
    (lambda out: (out / "metrics.jsonl").write_text('{"type": "step", "step": 1}\n'), "metrics.jsonl, line 1"),
    (lambda out: (out / "metrics.jsonl").write_text('{"type": "epoch", "epoch": 1, "test_accuracy": 0.5}\n' * 2),
     "different runs"),
    (lambda out: (out / "summary.json").write_text(
        json.dumps({**json.loads((out / "summary.json").read_text()), "status": "interrupted"})), "unfinished"),
])
def test_plot_checks_every_file_and_names_it(tmp_path, capsys, damage, named):
    real_data_dir()
    out = _finished_run(tmp_path)
    damage(out)
    capsys.readouterr()
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "x.png")]) == 1
    error = capsys.readouterr().err
    assert named in error and str(out) in error and error.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content, named", [("[]", "must hold a JSON object"), ('{"debias": 3}', "'debias'"),
                                            ("{", "not valid JSON")])
def test_reproduce_checks_results_json_before_running(tmp_path, capsys, content, named):
    (tmp_path / "results.json").write_text(content)
    assert cli.main(["reproduce", "debias", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert named in error and "results.json" in error and error.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # nothing ran


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_reproduce_refuses_a_bad_worker_count(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["reproduce", "large_batch", "--workers", value, "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "argument --workers" in error and value in error
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- Ctrl-C and --resume
def _interrupt_after(args, out, step, timeout=120):
    """Start `lamb-edu train`, send SIGINT once metrics.jsonl reaches ``step``, and wait for it to end."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    process = subprocess.Popen([sys.executable, "-m", "lamb_edu", "train", *args, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            metrics = out / "metrics.jsonl"
            lines = metrics.read_text().splitlines() if metrics.is_file() else []
            if any(json.loads(line).get("step", 0) >= step for line in lines[:-1] or lines[:0]):
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.005)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


@pytest.mark.mnist
@pytest.mark.slow
def test_sigint_stops_with_a_checkpoint_and_the_command_that_resumes_it(tmp_path, capsys):
    """The CLI boundary: SIGINT to the process. (Bit-for-bit resume: test_train; random SIGKILLs: test_run_folder.)"""
    real_data_dir()
    args = ["--optimizer", "lamb", "--epochs", "2", "--train-size", "2000", "--batch-size", "8", "--hidden", "32",
            "--checkpoint-every", "7", "--accumulate", "2"]
    out = tmp_path / "interrupted"
    code, stderr = _interrupt_after(args, out, step=40)
    assert code == 130, stderr
    assert "Traceback" not in stderr and f"--resume {out}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 40 <= summary["steps"] < 500
    assert json.loads((out / "checkpoint.json").read_text())["position"]["step"] == summary["steps"]
    assert not (out / ".lamb-edu.lock").exists()
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "x.png")]) == 1
    assert "unfinished" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(out), "--lr", "0.1"]) == 2  # the settings come from the run
    assert cli.main(["train", "--resume", str(out)]) == 0
    finished = json.loads((out / "summary.json").read_text())
    assert finished["status"] == "finished" and finished["steps"] == 500 and finished["run_id"] == summary["run_id"]
    events = read_metrics(out)
    assert events[0] == {"type": "run", "run_id": summary["run_id"]}
    assert [event["epoch"] for event in events if event["type"] == "epoch"] == [1, 2]


def test_resume_of_a_damaged_checkpoint_exits_1_naming_it(tmp_path, capsys):
    real_data_dir()
    out = _finished_run(tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip")
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 1
    error = capsys.readouterr().err
    assert "checkpoint.npz" in error and "corrupt" in error and error.count("\n") == 1


# ----------------------------------------------------------------------------- --model cnn
def test_hidden_is_refused_for_the_cnn(tmp_path, capsys):
    assert cli.main(["train", "--model", "cnn", "--hidden", "8", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--hidden" in error and "cnn" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_evaluation_batches_keep_2000_for_the_mlp_and_500_for_the_cnn():
    from lamb_edu.train.metrics import evaluation_batch_size

    assert evaluation_batch_size(nn.MLP([784, 16, 10], seed=0)) == 2000
    assert evaluation_batch_size(nn.CNN(seed=0)) == 500


@pytest.mark.slow
@pytest.mark.mnist
def test_a_checkpoint_of_one_model_does_not_resume_into_the_other(tmp_path, capsys):
    real_data_dir()
    mlp, cnn = tmp_path / "mlp", tmp_path / "cnn"
    assert _train(mlp) == 0
    assert cli.main(["train", "--model", "cnn", "--epochs", "1", "--train-size", "300", "--batch-size", "100",
                     "--out", str(cnn)]) == 0
    summary = json.loads((cnn / "summary.json").read_text())
    assert summary["settings"]["model"] == "cnn" and summary["settings"]["hidden"] is None
    assert summary["architecture"]["class"] == "CNN"
    assert summary["architecture"]["parameters"][0] == ["conv1.weight", [20, 1, 5, 5]]
    assert 0.0 <= summary["final"]["test_accuracy"] <= 1.0
    files = {}
    for run in (mlp, cnn):  # both runs "interrupted", then each gets the other's checkpoint
        document = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**document, "status": "interrupted"}))
        files[run] = {name: (run / name).read_bytes() for name in ("checkpoint.json", "checkpoint.npz")}
    for source, target in ((mlp, cnn), (cnn, mlp)):
        for name, content in files[source].items():
            (target / name).write_bytes(content)
    capsys.readouterr()
    for run, saved, wanted in ((mlp, "CNN", "MLP"), (cnn, "MLP", "CNN")):
        assert cli.main(["train", "--resume", str(run)]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "cannot resume" in error
        assert f"saved from {saved}" in error and f"this run's model is {wanted}" in error


def test_lamb2019_is_the_may_rule_and_no_trust_ratio_is_its_adam_mode():
    model = nn.MLP([4, 3], seed=0)
    for flags, adam in (([], False), (["--no-trust-ratio"], True)):
        args = cli.build_parser().parse_args(["train", "--optimizer", "lamb2019", "--weight-decay", "0.01", *flags])
        optimizer = cli.build_optimizer(cli.train_settings(args), list(model.named_parameters()))
        group = optimizer.param_groups[0]
        assert type(optimizer).__name__ == "LAMB2019" and group["adam"] is adam
        assert group["eps"] == 1e-8 and group["weight_decay"] == 0.01 and group["betas"] == (0.9, 0.999)
    # LAMB2019 has no bias-correction switch (it is folded into the step size): refused in one line, exit code 2
    assert cli.main(["train", "--optimizer", "lamb2019", "--no-bias-correction", "--out", "/nonexistent/never"]) == 2


@pytest.mark.parametrize("command", [["train"], ["sweep", "--batch-sizes", "64", "--lrs", "0.1"]])
def test_the_backend_follows_the_environment_unless_the_flag_is_given(monkeypatch, command):
    """LAMB_EDU_BACKEND=cupy was overridden by --backend's default, numpy: the run silently trained on the CPU."""
    parser = cli.build_parser()
    monkeypatch.setattr("lamb_edu.backend.name", lambda: "cupy")  # what LAMB_EDU_BACKEND=cupy chose at import
    assert train_settings(parser.parse_args(command))["backend"] == "cupy"
    assert train_settings(parser.parse_args([*command, "--backend", "numpy"]))["backend"] == "numpy"
