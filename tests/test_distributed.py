"""Data-parallel training: the same seeded run on 1, 2 and 4 ranks, plain and with ZeRO-1, equals the
one-process optimizers; faults end the job; the all-reduce cost model against hand-computed values."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import Tensor, nn, optim
from lamb_edu.data import batches
from lamb_edu.distributed import (
    DEFAULT_BUCKET_MB,
    DataParallel,
    FlatParameters,
    LocalWorld,
    RankFailure,
    ShardedOptimizer,
    check_batch_size,
    fit_latency_bandwidth,
    resolve_bucket_mb,
    ring_allreduce_seconds,
    ring_link_from_fit,
)

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "mpi" / "data_parallel_run.py"
sys.path.insert(0, str(DRIVER.parent))
import data_parallel_run as driver  # noqa: E402  (the MPI program's configuration: sizes, data, optimizers)

MPI_MISSING = importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None
_mpi_installed = pytest.mark.skipif(MPI_MISSING, reason="mpi4py (and mpiexec) not installed: pip install mpi4py mpich")


def needs_mpi(test):
    """A test that starts mpiexec: marked ``mpi``, skipped without mpi4py and mpiexec."""
    return pytest.mark.mpi(_mpi_installed(test))


def mpiexec(ranks: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(["mpiexec", "-n", str(ranks), sys.executable, str(DRIVER), *args],
                          capture_output=True, text=True, env=environment, timeout=timeout, cwd=REPO)


def reference_run(name: str) -> tuple[list[float], np.ndarray]:
    """One process, the plain lamb_edu.optim class, whole global batches: what every world must reproduce."""
    model = nn.MLP(driver.SIZES, seed=driver.SEED)
    optimizer = driver.CONFIGS[name](model.parameters())
    x, y = driver.synthetic_data()
    losses = []
    for step, (xb, yb) in enumerate(batches(x, y, driver.BATCH, seed=driver.SEED, epoch=0), start=1):
        if step > driver.STEPS:
            break
        model.zero_grad()
        loss = nn.cross_entropy(model(Tensor(xb)), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first = model.parameters()[0]
    first_state = optimizer.state[first]["momentum_buffer" if name == "lars" else "m"]
    return losses, np.concatenate([p.data.reshape(-1) for p in model.parameters()]), first_state


@pytest.fixture(scope="module")
def references():
    return {name: reference_run(name) for name in driver.CONFIGS}


def assert_matches_reference(results, references):
    for name, (losses, weights, first_state) in references.items():
        for mode in driver.MODES:
            assert weights.dtype == np.float32 and results[f"{name}/{mode}/weights"].dtype == np.float32
            np.testing.assert_allclose(results[f"{name}/{mode}/losses"], losses, rtol=1e-5, err_msg=f"{name} {mode}")
            np.testing.assert_allclose(results[f"{name}/{mode}/weights"], weights, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {mode}")
            np.testing.assert_allclose(results[f"{name}/{mode}/first_state"], first_state, rtol=1e-4, atol=1e-7,
                                       err_msg=f"{name} {mode} state")
        assert results[f"{name}/plain/weights"].shape == weights.shape
        # the overlap: of the 4 buckets, the 3 not holding the first layer started before backward() returned
        assert results[f"{name}/plain/started_during_backward"].tolist() == [0] * 4
        for mode in ("bucketed", "sharded", "bucket_steps", "sharded_bucket_steps"):
            assert results[f"{name}/{mode}/started_during_backward"].tolist() == [3] * 4, (name, mode)
        # stepped bucket by bucket or all at once: the same step, to float32 rounding
        for whole, by_bucket in (("bucketed", "bucket_steps"), ("sharded", "sharded_bucket_steps")):
            for item in ("losses", "weights", "first_state"):
                np.testing.assert_allclose(results[f"{name}/{by_bucket}/{item}"], results[f"{name}/{whole}/{item}"],
                                           rtol=1e-6, atol=1e-8, err_msg=f"{name} {by_bucket} {item}")


def test_one_process_world_matches_the_optimizers(references, tmp_path):
    """Without mpiexec the driver runs in a one-process world, and must still equal the optimizers."""
    out = tmp_path / "one.npz"
    subprocess.run([sys.executable, str(DRIVER), str(out)], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO), "LAMB_EDU_MPI": "0"})
    with np.load(out) as results:
        assert int(results["size"]) == 1
        assert_matches_reference(results, references)


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_match_one_process(ranks, references, tmp_path):
    out = tmp_path / f"ranks{ranks}.npz"
    result = mpiexec(ranks, str(out))
    assert result.returncode == 0, result.stderr
    with np.load(out) as results:
        assert int(results["size"]) == ranks
        assert_matches_reference(results, references)


@needs_mpi
def test_a_rank_that_cannot_read_its_data_ends_the_job(tmp_path):
    out = tmp_path / "never.npz"
    started = time.monotonic()
    result = mpiexec(2, str(out), "--fail", "data", timeout=60)  # rank 0 waits in a broadcast: it must not hang
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    assert "rank 1 of 2 failed" in result.stderr and "nonexistent" in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written, not even a temporary file


@needs_mpi
def test_a_nan_on_one_rank_ends_the_job_with_its_message(tmp_path):
    out = tmp_path / "never.npz"
    started = time.monotonic()
    result = mpiexec(2, str(out), "--fail", "nan", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    assert "RankFailure: rank 1 of 2 failed: the loss is nan at step 3" in result.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- in one process
def small_model(seed=0):
    return nn.MLP([6, 5, 3], seed=seed)


def test_flat_parameters_are_views_and_gradients_are_gathered():
    model = small_model()
    before = [p.data.copy() for p in model.parameters()]
    flat = FlatParameters(list(model.named_parameters()), shards=4)
    assert flat.numel == 6 * 5 + 5 + 5 * 3 + 3 and flat.data.size == 4 * math.ceil(flat.numel / 4)
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, old)
    flat.data[0] = 42.0  # the model reads the buffer
    assert model.parameters()[0].data[0, 0] == 42.0
    loss = nn.cross_entropy(model(Tensor(np.ones((2, 6), np.float32))), np.array([0, 2]))
    loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    flat.gather_gradients()
    for index, (p, grad) in enumerate(zip(model.parameters(), grads)):
        np.testing.assert_array_equal(p.grad, grad)
        assert np.shares_memory(p.grad, flat.grad)
        np.testing.assert_array_equal(flat.grad[flat.offsets[index] : flat.offsets[index] + grad.size], grad.ravel())
    # shards: 53 elements over 4 ranks -> 14 each; rank 1 owns [14, 28): the end of layer 0's weight only
    assert flat.pieces(1) == [(0, 14, 28)]
    assert flat.pieces(2) == [(0, 28, 30), (1, 30, 35), (2, 35, 42)]


def test_batches_must_split_evenly():
    check_batch_size(64, 4, train_size=256)
    with pytest.raises(ValueError, match="global batch of 30 examples cannot be split evenly over 4 ranks"):
        check_batch_size(30, 4)
    with pytest.raises(ValueError, match="global batch of 2 examples"):
        check_batch_size(64, 4, train_size=258)  # the last batch has 2


@pytest.mark.parametrize("name, make", [
    ("lamb groups and clipping", lambda model: optim.LAMB(optim.param_groups_no_decay(model, weight_decay=0.05),
                                                          lr=0.05, max_grad_norm=0.5, fused=False)),
    ("lamb fused, groups and clipping", lambda model: optim.LAMB(
        optim.param_groups_no_decay(model, weight_decay=0.05), lr=0.05, max_grad_norm=0.5)),
    ("lamb fused, one group", lambda model: optim.LAMB(model.parameters(), lr=0.05, weight_decay=0.01,
                                                       bias_correction=False)),
    ("lars nesterov", lambda model: optim.LARS(model.parameters(), lr=0.3, nesterov=True, weight_decay=1e-3)),
    ("adam l2", lambda model: optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1)),
])
def test_sharded_step_in_one_process_equals_the_optimizer(name, make):
    x = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    y = np.arange(8) % 3
    runs = []
    for sharded in (False, True):
        model = small_model()
        optimizer = make(model)
        parallel = DataParallel(model, LocalWorld(), bucket_mb=0.0001)
        if sharded:
            optimizer = ShardedOptimizer(optimizer, parallel)
        for _ in range(4):
            model.zero_grad()
            loss = nn.cross_entropy(model(Tensor(x)), y)
            loss.backward()
            parallel.all_reduce_gradients(loss.item())
            optimizer.step()
        runs.append((model, optimizer))
    (model, optimizer), (sharded_model, sharded_optimizer) = runs
    for p, q in zip(model.parameters(), sharded_model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-5, atol=1e-7, err_msg=name)
        for key in ("weight_norm", "ratio_denominator", "trust_ratio", "grad_norm"):
            if key in optimizer.state[p]:
                assert sharded_optimizer.state[q][key] == pytest.approx(optimizer.state[p][key], rel=1e-5)


def test_sharded_state_dict_is_the_unsharded_one_and_resumes():
    x = np.random.default_rng(2).standard_normal((8, 6)).astype(np.float32)
    y = np.arange(8) % 3

    def steps(model, optimizer, count):
        for _ in range(count):
            model.zero_grad()
            loss = nn.cross_entropy(model(Tensor(x)), y)
            loss.backward()
            if isinstance(optimizer, ShardedOptimizer):
                optimizer.parallel.all_reduce_gradients(loss.item())
            optimizer.step()

    model = small_model()
    reference = optim.LAMB(model.parameters(), lr=0.05, weight_decay=0.01)
    steps(model, reference, 3)
    saved = reference.state_dict()
    resumed_model = small_model()
    resumed_model.load_state_dict(model.state_dict())
    sharded = ShardedOptimizer(optim.LAMB(resumed_model.parameters(), lr=0.05, weight_decay=0.01),
                               DataParallel(resumed_model, LocalWorld()))
    sharded.load_state_dict(saved)
    again = sharded.state_dict()
    for index in saved["state"]:
        for key in ("m", "v", "step"):
            np.testing.assert_array_equal(again["state"][index][key], saved["state"][index][key])
    steps(model, reference, 2)
    steps(resumed_model, sharded, 2)
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-5, atol=1e-7)


def test_sharding_saves_memory_by_the_world_size():
    model = small_model()
    world = LocalWorld()
    world.size = 4  # the bookkeeping of rank 0 of 4 (no collective is called)
    sharded = ShardedOptimizer(optim.LAMB(model.parameters()), DataParallel(model, world))
    assert sharded.state_bytes() == {"per_rank": 2 * 4 * 14, "unsharded": 2 * 4 * 53}


def test_local_world_needs_no_mpi():
    code = ("import sys; sys.modules['mpi4py'] = None; import lamb_edu, lamb_edu.distributed as d; "
            "w = d.get_world(); assert (w.rank, w.size) == (0, 1), w; print(type(w).__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO), "LAMB_EDU_MPI": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LocalWorld"


def test_rank_failure_names_the_failing_rank():
    model = small_model()
    parallel = DataParallel(model, LocalWorld())
    with pytest.raises(FloatingPointError, match="every rank"):  # all ranks (here, the only one): divergence
        parallel.all_reduce_gradients(float("nan"))
    assert issubclass(RankFailure, RuntimeError) and not issubclass(RankFailure, FloatingPointError)


# ---------------------------------------------------------------------------- the cost model
def test_ring_allreduce_model_against_hand_computed_values():
    # p = 4, 100 MB at 10 GB/s and 5 µs: 2·3/4 · 0.01 s + 2·3 · 5e-6 s = 0.015 + 0.00003
    assert ring_allreduce_seconds(100e6, 4, 10e9, 5e-6) == pytest.approx(0.01503)
    # p = 2: 2·1/2 · 1e9/1e9 + 2·1e-3 = 1.002 s
    assert ring_allreduce_seconds(1e9, 2, 1e9, 1e-3) == pytest.approx(1.002)
    assert ring_allreduce_seconds(1e9, 1, 1e9, 1e-3) == 0.0
    # BERT-Large's 340M float32 gradients over 1024 workers at 12.5 GB/s: 2·1023/1024 · 1.36 GB / 12.5 GB/s
    assert ring_allreduce_seconds(340e6 * 4, 1024, 12.5e9, 0.0) == pytest.approx(2 * 1023 / 1024 * 0.1088)
    with pytest.raises(ValueError):
        ring_allreduce_seconds(1.0, 0, 1e9, 0.0)


def test_fit_recovers_latency_and_bandwidth():
    sizes = np.array([1e3, 1e4, 1e5, 1e6])
    seconds = 20e-6 + sizes / 2e9  # 20 µs + bytes / (2 GB/s)
    latency, bandwidth = fit_latency_bandwidth(sizes, seconds)
    assert latency == pytest.approx(20e-6, rel=1e-6) and bandwidth == pytest.approx(2e9, rel=1e-6)
    # on p = 4 the fitted line is 2·3·α + 2·3/4 · bytes/β: α = 20 µs / 6, β = 1.5 · 2 GB/s
    assert ring_link_from_fit(latency, bandwidth, 4) == (pytest.approx(20e-6 / 6), pytest.approx(3e9))
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_latency_bandwidth([1e3, 1e3], [1.0, 2.0])


# ---------------------------------------------------------------------------- through the command line
CLI_RUN = ["--optimizer", "lamb", "--lr", "0.02", "--weight-decay", "0.01", "--train-size", "256", "--batch-size", "64",
           "--hidden", "32", "--seed", "5"]


def mnist_dir() -> str:
    directory = os.environ.get("LAMB_EDU_DATA")
    if not directory or not Path(directory).is_dir():
        pytest.skip("real MNIST needed: set LAMB_EDU_DATA to the directory with the four IDX files")
    return directory


def lamb_edu_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lamb_edu", "train", *args]


def run_command(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout, cwd=REPO)


def read_run(out: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Every step's loss (checkpoint.json), the final weights and optimizer arrays (checkpoint.npz), summary.json."""
    losses = np.asarray(json.loads((out / "checkpoint.json").read_text())["history"]["step_loss"])
    with np.load(out / "checkpoint.npz", allow_pickle=False) as arrays:
        saved = {key: arrays[key] for key in arrays.files if key.startswith(("model/", "optimizer/state/"))}
    return losses, saved, json.loads((out / "summary.json").read_text())


def assert_same_run(got: Path, expected: Path) -> float:
    """Same losses and final weights (and m, v) to float32 rounding; returns the largest weight difference."""
    losses, arrays, _ = read_run(got)
    expected_losses, expected_arrays, _ = read_run(expected)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    assert sorted(arrays) == sorted(expected_arrays)
    for key, value in expected_arrays.items():
        if value.dtype.kind == "f":
            assert arrays[key].dtype == np.float32, key
            np.testing.assert_allclose(arrays[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    return max(float(np.abs(arrays[key] - value).max()) for key, value in expected_arrays.items()
               if key.startswith("model/"))


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The reference: two epochs of `lamb-edu train` on one process, without --data-parallel."""
    mnist_dir()
    out = tmp_path_factory.mktemp("one") / "run"
    result = run_command(lamb_edu_command(*CLI_RUN, "--epochs", "2", "--out", str(out)))
    assert result.returncode == 0, result.stderr
    return out


@needs_mpi
@pytest.mark.parametrize("flags", [[], ["--shard-optimizer"]], ids=["plain", "zero1"])
def test_cli_two_ranks_equal_one_process(flags, one_process_run, tmp_path):
    out = tmp_path / "run"
    result = run_command(["mpiexec", "-n", "2", *lamb_edu_command("--data-parallel", *flags, *CLI_RUN, "--epochs", "2",
                                                                   "--out", str(out))])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("epoch 2/2") == 1 and result.stdout.count("wrote") == 1  # rank 0 alone prints
    largest = assert_same_run(out, one_process_run)
    assert largest < 1e-6
    # evaluation sharded: each rank scored 5000 test images, the counts were added
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (one_process_run / "metrics.jsonl").read_text().splitlines()]
    scores = [(e["test_accuracy"], e["test_loss"]) for e in epochs if e["type"] == "epoch"]
    expected_scores = [(e["test_accuracy"], e["test_loss"]) for e in expected if e["type"] == "epoch"]
    assert len(scores) == 2 and [a for a, _ in scores] == pytest.approx([a for a, _ in expected_scores], abs=1e-4)
    np.testing.assert_allclose([loss for _, loss in scores], [loss for _, loss in expected_scores], rtol=1e-4)
    report = read_run(out)[2]["data_parallel"]
    parameters = 784 * 32 + 32 + 32 * 10 + 10
    assert report["world_size"] == 2 and report["parameters"] == parameters
    # "auto": 0.25 MB buckets with two cores per rank (all of this 0.1 MB MLP in one), else one bucket
    assert report["bucket_mb"] == (0.25 if (os.cpu_count() or 1) >= 4 else None) and report["buckets"] == 1
    timings = report["timings"]
    assert timings["steps"] == 8 and timings["gradient_bytes"]["total"] == 8 * 4 * parameters
    assert timings["compute_seconds"]["total"] > 0 and timings["exposed_seconds"]["mean"] > 0
    with np.load(out / "trust.npz") as trust:
        np.testing.assert_array_equal(trust["data_parallel/step"], np.arange(1, 9))
        assert trust["data_parallel/exposed_seconds"].shape == (8,)
    if flags:  # m and v: 2 float32 per parameter, half of them per rank; ZeRO-1's traffic: two float64 per layer more
        assert report["optimizer_state_bytes"] == {"per_rank": 4 * parameters, "unsharded": 8 * parameters,
                                                   "saved_per_rank": 4 * parameters}
        assert report["traffic_bytes_per_step"] == {"gradient_reduce_scatter": 4 * parameters,
                                                    "status_reduce_scatter": 2 * 4 * 2,
                                                    "parameter_allgather": 4 * parameters,
                                                    "layer_norms_allreduce": 4 * 2 * 8}
    else:
        assert "optimizer_state_bytes" not in report
        assert report["traffic_bytes_per_step"] == {"gradient_allreduce": 4 * parameters, "status_allreduce": 8}


@pytest.mark.slow
@needs_mpi
def test_cli_two_rank_sharded_checkpoint_resumes_on_one_rank(one_process_run, tmp_path):
    """Two ranks, ZeRO-1 and micro-batches write epoch 1; one process (a 1-rank world) finishes epoch 2."""
    out = tmp_path / "run"
    command = lamb_edu_command("--data-parallel", "--shard-optimizer", *CLI_RUN, "--accumulate", "2", "--epochs", "1",
                               "--out", str(out))
    first = run_command(["mpiexec", "-n", "2", *command])
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary["status"], summary["settings"]["epochs"] = "interrupted", 2  # as if stopped after its first epoch
    (out / "summary.json").write_text(json.dumps(summary))
    resumed = run_command(lamb_edu_command("--resume", str(out), "--data-parallel"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, one_process_run)
    finished = read_run(out)[2]
    assert finished["status"] == "finished" and finished["data_parallel"]["world_size"] == 1


@needs_mpi
def test_cli_a_rank_that_cannot_read_the_data_ends_the_job(tmp_path):
    mnist_dir()
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (broken / name).write_bytes(b"\0\0\x08\x03 not MNIST")
    out = tmp_path / "run"
    command = lamb_edu_command("--data-parallel", *CLI_RUN, "--epochs", "1", "--out", str(out))
    started = time.monotonic()
    result = run_command(["mpiexec", "-n", "1", *command, ":", "-n", "1", "-env", "LAMB_EDU_DATA", str(broken),
                          *command],
                         timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lamb-edu train: error: rank 1 of 2: ") and str(broken) in lines[0]
    assert not out.exists()  # nothing written: the ranks agreed on the failure before rank 0 made the folder


@needs_mpi
def test_cli_batch_the_ranks_cannot_split_is_one_line_and_exit_2(tmp_path):
    mnist_dir()
    command = lamb_edu_command("--data-parallel", "--train-size", "256", "--batch-size", "63",
                               "--out", str(tmp_path / "run"))
    result = run_command(["mpiexec", "-n", "2", *command])
    assert result.returncode == 2
    assert result.stderr.strip() == ("lamb-edu train: error: argument --batch-size: a global batch of 63 cannot be "
                                     "split "
                                     "evenly over 2 ranks; choose a multiple of 2")
    assert not (tmp_path / "run").exists()


class TwoRankWorld(LocalWorld):
    """Rank ``rank`` of a pretend world of 2: the other rank's status row is added by ``allreduce_sum``."""

    def __init__(self, rank, other_code=0.0):
        self.rank, self.size, self.other_code, self.aborted = rank, 2, other_code, None

    def allreduce_sum(self, buffer):
        if buffer.shape == (2, 2):  # the set-up agreement: the other rank's code and settings digest
            buffer[0, 1 - self.rank] += self.other_code
            buffer[1, 1 - self.rank] += buffer[1, self.rank]

    def abort(self, code=1):
        self.aborted = code
        raise SystemExit(code)


def test_set_up_failures_are_agreed_and_printed_by_the_ranks_that_had_them():
    from lamb_edu.cli import CommandError
    from lamb_edu.cli.train_parallel import _agreed

    def fail():
        raise CommandError("argument --batch-size: bad", 2)

    assert _agreed(TwoRankWorld(0), lambda: "ok") == "ok"
    with pytest.raises(CommandError, match="^argument --batch-size: bad$"):  # both failed: rank 0 prints, untagged
        _agreed(TwoRankWorld(0, other_code=2), fail)
    assert _agreed(TwoRankWorld(1, other_code=2), fail) == 2  # ... and rank 1 exits quietly
    assert _agreed(TwoRankWorld(0, other_code=1), lambda: "ok") == 1  # only the other failed: exit with its code
    with pytest.raises(CommandError, match="^rank 1 of 2: ") as raised:
        _agreed(TwoRankWorld(1), fail)
    assert raised.value.exit_code == 2


def test_a_rank_that_fails_alone_during_training_aborts_the_job(capsys):
    from lamb_edu.cli.run_setup import Run
    from lamb_edu.cli.train_parallel import _Setup, _train

    world = TwoRankWorld(1)
    model = small_model()
    settings = {"epochs": 1, "batch_size": 4, "seed": 0, "train_size": None, "checkpoint_every": None, "accumulate": 1}
    run = Run(None, settings, False, None, None)  # no data: fit fails
    setup = _Setup(run, model, optim.LAMB(model.parameters()), None, None)
    args = type("Args", (), {"shard_optimizer": False})()
    with pytest.raises(SystemExit):
        _train(world, args, setup)
    assert world.aborted == 1
    assert "lamb-edu train: error: rank 1 of 2 failed: TypeError: fit trains on a Task" in capsys.readouterr().err


def test_predicted_step_against_hand_computed_values():
    from lamb_edu.distributed import predict_data_parallel_step

    # 1M parameters (4 MB) on 4 workers, batch 64 at 1 ms an example, 1 GB/s and 10 µs links:
    # compute 16 ms; all-reduce 2·3/4 · 4e6/1e9 + 6·1e-5 = 6 ms + 0.06 ms
    step = predict_data_parallel_step(1e6, 4, 64, seconds_per_example=1e-3, bandwidth=1e9, latency=1e-5)
    assert step["compute_seconds"] == pytest.approx(0.016)
    assert step["allreduce_seconds"] == pytest.approx(0.00606)
    assert step["efficiency"] == pytest.approx(0.016 / 0.02206)
    with pytest.raises(ValueError, match="each of 8 workers"):
        predict_data_parallel_step(1e6, 8, 4, seconds_per_example=1e-3, bandwidth=1e9, latency=0.0)


def test_auto_buckets_only_when_a_progress_thread_can_move_them():
    assert resolve_bucket_mb("auto", progress_thread=True) == DEFAULT_BUCKET_MB
    assert resolve_bucket_mb("auto", progress_thread=False) is None
    assert resolve_bucket_mb(1.5, progress_thread=False) == 1.5 and resolve_bucket_mb(None, True) is None
    for bad in (0, -1.0, float("nan"), "1", True):
        with pytest.raises(ValueError, match="bucket_mb must be a positive number"):
            resolve_bucket_mb(bad, progress_thread=True)
    model = small_model()
    assert DataParallel(model, LocalWorld(), progress_thread=False).buckets.plan == [[3, 2, 1, 0]]
    assert DataParallel(small_model(), LocalWorld(), bucket_mb=20 * 4 / 2**20, progress_thread=False).bucket_mb > 0


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "x", "Auto"])
def test_cli_bucket_size_must_be_a_finite_number_of_megabytes(value):
    result = run_command(lamb_edu_command("--data-parallel", "--bucket-mb", value), timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("lamb-edu train: error: argument --bucket-mb: ")
