"""One MNIST run: its optimizer settings (``MnistSetting``), what it recorded (``MnistRun``), and ``train_mnist``.

Two networks (``NETWORKS``): the MLP 784 → 256 → ReLU → 256 → ReLU → 10, fast enough for every
study, and the article's own CNN (``nn.CNN``), which its code trained. A setting names the LAMB rule
it trains with (``RULES``): the May 2019 code of cybertronai/pytorch-lamb that the article ran
(``optim.LAMB2019``), or its June 2019 code (``optim.LAMB`` without bias correction, ‖w‖ clamped at
10). Either way its "Adam" is the same rule with the trust ratio computed but not used
(``use_trust_ratio=False``), so both sides record r, r1 and r2.

``train_mnist`` keeps the runs it trained in a ``RunCache`` (``RUN_CACHE`` unless given another, or
None): experiments 3, 4 and 5 share runs, so each is trained once per process. The cache holds at
most ``max_runs`` runs and forgets the least recently used.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lamb_edu import backend, nn, optim, train
from lamb_edu.data import prepare
from lamb_edu.train.divergence import Divergence, detect_divergence

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = ["MNIST_NETWORK", "NETWORKS", "build_network", "Rule", "RULES", "MnistSetting", "MnistRun", "RunCache",
           "RUN_CACHE", "train_mnist"]

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
class Rule:
    """A version of the article code's LAMB: how results and figures name it, and what r, r1 and r2 mean."""

    title: str  # the version, for figure titles
    description: str  # what it computes, for results.json
    r: str
    r1: str
    r2: str
    root_mean_square: bool  # r1 and r2 are RMS (norm / √n) rather than norms


RULES = {
    "may2019": Rule(
        "May 2019 rule (pytorch-lamb ff2245e, the code the article ran)",
        "optim.LAMB2019: L2 weight decay in g, torch Adam moments with eps 1e-8 on √v, bias correction folded into "
        "the step size, r = min(RMS(w) / RMS(adam step), 10)",
        "r = min(r1/r2, 10)", "r1 = RMS(w)", "r2 = RMS(adam step)", True),
    "june2019": Rule(
        "June 2019 rule (pytorch-lamb 207f672)",
        "optim.LAMB(bias_correction=False): no bias correction, eps 1e-6, decoupled weight decay in u, "
        "r = min(‖w‖, 10) / ‖u‖",
        "r = φ(‖w‖)/‖u‖", "r1 = ‖w‖", "r2 = ‖u‖", False),
}


@dataclass(frozen=True)
class MnistSetting:
    """The optimizer settings of one MNIST run: LAMB under ``rule`` (a key of ``RULES``).

    ``use_trust_ratio=False`` is the Adam baseline (``LAMB2019(adam=True)`` under the May rule, which
    is Adam with L2 weight decay). ``bias_correction`` and ``clamp_value`` apply to the June rule only.
    """

    label: str
    lr: float
    betas: tuple[float, float]
    weight_decay: float = 0.0
    use_trust_ratio: bool = True
    bias_correction: bool = False
    clamp_value: float | None = 10.0
    batch_size: int = 512
    epochs: int = 5
    rule: str = "june2019"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; choose from {', '.join(RULES)}")

    def make_optimizer(self, params: list[Any]) -> Any:
        """The optimizer of ``rule`` with these settings over ``params``."""
        if self.rule == "may2019":
            return optim.LAMB2019(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay,
                                  adam=not self.use_trust_ratio)
        return optim.LAMB(
            params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, bias_correction=self.bias_correction,
            clamp_value=self.clamp_value, use_trust_ratio=self.use_trust_ratio,
        )

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON values, with the rule and the optimizer named as the article names it."""
        baseline = "Adam (LAMB2019 adam=True: Adam with L2 weight decay)" if self.rule == "may2019" else \
            "Adam baseline (June rule, trust ratio computed but not used)"
        june = ({"bias_correction": self.bias_correction, "clamp_value": self.clamp_value}
                if self.rule == "june2019" else {})
        return {
            "rule": self.rule, "rule_description": RULES[self.rule].description,
            "optimizer": "LAMB" if self.use_trust_ratio else baseline,
            "lr": self.lr, "betas": list(self.betas), "weight_decay": self.weight_decay, **june,
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
    parameter_sizes: Any = None  # number of entries of each parameter, in the order of ``parameter_names``

    @property
    def rule(self) -> Rule:
        """The LAMB rule this run trained with (its title and what r, r1 and r2 mean)."""
        return RULES[self.setting.rule]

    @property
    def r1(self) -> Any:
        """(logs, parameters): r1 as the run's rule logs it, RMS(w) under the May rule, ‖w‖ under the June rule."""
        return self._as_rule_logs(self.weight_norm)

    @property
    def r2(self) -> Any:
        """(logs, parameters): r2 as the run's rule logs it, RMS(adam step) (May) or ‖u‖ (June)."""
        return self._as_rule_logs(self.ratio_denominator)

    def _as_rule_logs(self, norms: Any) -> Any:
        if not self.rule.root_mean_square:
            return norms
        return norms / np.sqrt(np.asarray(self.parameter_sizes, dtype=np.float64))

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


class RunCache:
    """Finished runs by everything that decides them, at most ``max_runs``, the least recently used forgotten first.

    The key (``train_mnist`` makes it) holds the setting, the seed, what is logged, the backend and its
    dtype, and a digest of the examples the run reads, so other data never get an old run.
    """

    def __init__(self, max_runs: int = 32) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        self.max_runs = max_runs
        self._runs: OrderedDict[tuple, MnistRun] = OrderedDict()

    def get(self, key: tuple) -> MnistRun | None:
        """The run stored under ``key`` (now the most recently used), or None."""
        run = self._runs.get(key)
        if run is not None:
            self._runs.move_to_end(key)
        return run

    def put(self, key: tuple, run: MnistRun) -> None:
        """Store ``run``; forget the least recently used run when more than ``max_runs`` are held."""
        self._runs[key] = run
        self._runs.move_to_end(key)
        while len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)

    def clear(self) -> None:
        """Forget every run."""
        self._runs.clear()

    def __len__(self) -> int:
        return len(self._runs)


# Experiments 3, 4 and 5 share 6 runs per full reproduce (18 runs in all); 32 holds them with room.
RUN_CACHE = RunCache(max_runs=32)


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
    cache: RunCache | None = RUN_CACHE,
) -> MnistRun:
    """Train ``network`` (a key of ``NETWORKS``) from ``seed`` with ``setting`` on ``data`` (``data.MNIST``); record it.

    The seed fixes the initial weights and the order of the batches, so a run is deterministic. The
    per-layer norms and trust ratios are logged every ``log_every`` steps; ``on_step(step)``, if
    given, is called at each of those steps (for a progress bar). With ``evaluate_every`` (a multiple
    of ``log_every``) the first ``evaluation_size`` test images are also scored every that many steps,
    which the epoch-end test cannot show early in training; scoring changes nothing in the run. A run
    ``cache`` holds (trained with the same arguments, backend and data) is returned as it was; with
    ``cache=None`` the run is always trained and kept nowhere.
    """
    if evaluate_every is not None and (evaluate_every < 1 or evaluate_every % log_every):
        raise ValueError(f"evaluate_every must be a positive multiple of log_every ({log_every}), got {evaluate_every}")
    key = (setting, seed, log_every, network, evaluate_every, evaluation_size if evaluate_every else None,
           backend.name(), str(backend.default_dtype()), _data_digest(data, train_size))
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
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
    run.parameter_sizes = [int(p.data.size) for p in model.parameters()]
    if scored is not None:
        run.evaluation_steps, run.evaluation_accuracy = np.array(scored.steps), np.array(scored.accuracy)
    if cache is not None:
        cache.put(key, run)
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
