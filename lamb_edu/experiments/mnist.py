"""One MNIST run: its optimizer settings (``MnistSetting``), what it recorded (``MnistRun``), and ``train_mnist``.

Two networks (``NETWORKS``): the MLP 784 → 256 → ReLU → 256 → ReLU → 10, fast enough for every
study, and the article's own CNN (``nn.CNN``), which its code trained. Every run uses the LAMB rule of the article's
code (pytorch-lamb): no bias correction, ‖w‖ clamped at 10. Its "Adam" is the same rule with the
trust ratio computed but not used (``use_trust_ratio=False``), so both sides record r, r1 = ‖w‖ and
r2 = ‖u‖.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from lamb_edu import backend, nn, optim, train
from lamb_edu.data import prepare
from lamb_edu.train.divergence import Divergence, detect_divergence

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = ["MNIST_NETWORK", "NETWORKS", "build_network", "MnistSetting", "MnistRun", "train_mnist"]

MNIST_NETWORK = (784, 256, 256, 10)  # the MLP's layer widths
# network name -> how results and figures name it
NETWORKS = {
    "mlp": "MLP " + "-".join(str(size) for size in MNIST_NETWORK),
    "cnn": "CNN (the article's): conv 5x5 1-20, max-pool 2, conv 5x5 20-50, max-pool 2, fc 800-500-10",
}


def build_network(network: str, seed: int) -> nn.Module:
    """The network called ``network`` (a key of ``NETWORKS``), its weights drawn from ``seed``."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    return nn.MLP(list(MNIST_NETWORK), seed=seed) if network == "mlp" else nn.CNN(seed=seed)


@dataclass(frozen=True)
class MnistSetting:
    """The optimizer settings of one MNIST run (LAMB; ``use_trust_ratio=False`` is the Adam baseline)."""

    label: str
    lr: float
    betas: tuple[float, float]
    weight_decay: float = 0.0
    use_trust_ratio: bool = True
    bias_correction: bool = False
    clamp_value: float | None = 10.0
    batch_size: int = 512
    epochs: int = 5

    def make_optimizer(self, params: list[Any]) -> Any:
        """``optim.LAMB`` with these settings over ``params``."""
        return optim.LAMB(
            params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, bias_correction=self.bias_correction,
            clamp_value=self.clamp_value, use_trust_ratio=self.use_trust_ratio,
        )

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON values, with the optimizer named as the article names it."""
        return {
            "optimizer": "LAMB" if self.use_trust_ratio else "Adam (LAMB rule, trust ratio computed but not used)",
            "lr": self.lr, "betas": list(self.betas), "weight_decay": self.weight_decay,
            "bias_correction": self.bias_correction, "clamp_value": self.clamp_value,
            "batch_size": self.batch_size, "epochs": self.epochs,
        }


@dataclass
class MnistRun:
    """What one MNIST run recorded, as host arrays (see ``train.History`` for the meaning)."""

    setting: MnistSetting
    seed: int
    step_loss: Any  # (steps,)
    epoch_steps: Any  # step count at the end of each epoch
    train_loss: Any  # mean training loss per epoch
    test_loss: Any
    test_accuracy: Any  # fraction per epoch
    log_steps: Any  # the steps at which norms were logged
    parameter_names: list[str]
    weight_norm: Any  # (logs, parameters): r1 = ‖w‖
    ratio_denominator: Any  # (logs, parameters): r2, what the trust ratio divides by (LAMB: ‖u‖)
    trust_ratio: Any  # (logs, parameters): r = φ(‖w‖)/‖u‖, computed whether or not it was used
    stopped_at: int | bool
    divergence: Divergence
    seconds: float
    network: str = "mlp"
    evaluation_steps: Any = None  # steps at which a test subset was scored (``evaluate_every``), else None
    evaluation_accuracy: Any = None  # fraction, one per evaluation step

    @property
    def final_test_accuracy(self) -> float:
        """The test accuracy after the last epoch (NaN if no epoch finished)."""
        return float(self.test_accuracy[-1]) if len(self.test_accuracy) else math.nan

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records for this run: accuracies, verdict, first and last norms per layer."""
        return {
            "seed": self.seed,
            "steps": int(self.step_loss.size),
            "final_test_accuracy": self.final_test_accuracy,
            "best_test_accuracy": float(np.max(self.test_accuracy)) if len(self.test_accuracy) else None,
            "final_train_loss": float(self.train_loss[-1]) if len(self.train_loss) else None,
            "test_accuracy_per_epoch": [float(a) for a in self.test_accuracy],
            "divergence": self.divergence.as_dict(),
            "layers": {
                name: {
                    "trust_ratio_first": float(self.trust_ratio[0, index]),
                    "trust_ratio_last": float(self.trust_ratio[-1, index]),
                    "weight_norm_first": float(self.weight_norm[0, index]),
                    "weight_norm_last": float(self.weight_norm[-1, index]),
                }
                for index, name in enumerate(self.parameter_names)
            } if len(self.log_steps) else {},
            **({"evaluation_steps": [int(step) for step in self.evaluation_steps],
                "evaluation_accuracy": [float(a) for a in self.evaluation_accuracy]}
               if self.evaluation_steps is not None else {}),
        }


# Experiments 3 and 4 train the same runs, so each run is trained once per process. The key holds
# everything that decides a run: the setting, the seed, what is logged, the backend and its dtype,
# and the data themselves (a digest of the examples the run reads), so other data never get an old run.
_RUNS: dict[tuple, MnistRun] = {}


def _data_digest(data: Any, train_size: int | None) -> str:
    """SHA-256 of the examples a run reads: the first ``train_size`` training examples and every test example."""
    count = train_size or len(data.train_images)
    digest = hashlib.sha256()
    for array in (data.train_images[:count], data.train_labels[:count], data.test_images, data.test_labels):
        host = np.ascontiguousarray(backend.to_numpy(array))
        digest.update(f"{host.dtype.str}{host.shape}".encode())
        digest.update(host.tobytes())
    return digest.hexdigest()


def train_mnist(
    setting: MnistSetting, seed: int, data: Any, train_size: int | None = None, log_every: int = 5,
    on_step: Any = None, network: str = "mlp", evaluate_every: int | None = None, evaluation_size: int = 2000,
) -> MnistRun:
    """Train ``network`` (a key of ``NETWORKS``) from ``seed`` with ``setting`` on ``data`` (``data.MNIST``) and record it.

    The seed fixes the initial weights and the order of the batches, so a run is deterministic. The
    per-layer norms and trust ratios are logged every ``log_every`` steps; ``on_step(step)``, if
    given, is called at each of those steps (for a progress bar). With ``evaluate_every`` (a multiple
    of ``log_every``) the first ``evaluation_size`` test images are also scored every that many steps,
    which the epoch-end test cannot show early in training; scoring changes nothing in the run. A run
    this process has already trained with the same arguments, backend and data is returned as it was.
    """
    if evaluate_every is not None and (evaluate_every < 1 or evaluate_every % log_every):
        raise ValueError(f"evaluate_every must be a positive multiple of log_every ({log_every}), got {evaluate_every}")
    key = (setting, seed, log_every, network, evaluate_every, evaluation_size if evaluate_every else None,
           backend.name(), str(backend.default_dtype()), _data_digest(data, train_size))
    if key in _RUNS:
        return _RUNS[key]
    model = build_network(network, seed)
    optimizer = setting.make_optimizer(model.parameters())
    scored = _Scorer(model, data, evaluation_size) if evaluate_every is not None else None

    def callback(event: dict[str, Any]) -> None:
        if event["type"] != "step":
            return
        if on_step is not None:
            on_step(event["step"])
        if scored is not None and event["step"] % evaluate_every == 0:
            scored(event["step"])

    history = train.fit(model, optimizer, data, epochs=setting.epochs, batch_size=setting.batch_size, seed=seed,
                        train_size=train_size, log_every=log_every, progress=False, callback=callback)
    run = _run_from_history(setting, seed, history, network)
    if scored is not None:
        run.evaluation_steps, run.evaluation_accuracy = np.array(scored.steps), np.array(scored.accuracy)
    _RUNS[key] = run
    return run


class _Scorer:
    """Scores ``model`` on the first ``size`` test images of ``data`` when called with a step, and keeps the results."""

    def __init__(self, model: Any, data: Any, size: int) -> None:
        self.model = model
        self.x, self.y = prepare(data.test_images[:size], data.test_labels[:size])
        self.steps: list[int] = []
        self.accuracy: list[float] = []

    def __call__(self, step: int) -> None:
        self.steps.append(step)
        self.accuracy.append(train.evaluate(self.model, self.x, self.y)[1])


def _run_from_history(setting: MnistSetting, seed: int, history: Any, network: str) -> MnistRun:
    """The ``MnistRun`` of a finished ``fit``: its history as host arrays, with the divergence verdict."""
    names = list(history.parameter_names)

    def table(rows: list[list[float]]) -> Any:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))

    run = MnistRun(
        setting=setting, seed=seed,
        step_loss=np.asarray(history.step_loss, dtype=np.float64),
        epoch_steps=np.array([epoch["steps"] for epoch in history.epochs]),
        train_loss=np.array([epoch["train_loss"] for epoch in history.epochs], dtype=np.float64),
        test_loss=np.array([epoch["test_loss"] for epoch in history.epochs], dtype=np.float64),
        test_accuracy=np.array([epoch["test_accuracy"] for epoch in history.epochs], dtype=np.float64),
        log_steps=np.asarray(history.log_steps), parameter_names=names,
        weight_norm=table(history.weight_norm), ratio_denominator=table(history.ratio_denominator),
        trust_ratio=table(history.trust_ratio), stopped_at=history.diverged, seconds=history.seconds,
        divergence=Divergence("learned", None, [], math.nan), network=network,
    )
    run.divergence = detect_divergence(run.step_loss, run.weight_norm, run.log_steps, run.stopped_at)
    return run
