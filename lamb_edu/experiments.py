"""The experiments of "An intuitive understanding of the LAMB optimizer" (Ben Mann, 2019), as data.

Each experiment is a function that runs it and returns a dataclass of NumPy arrays and numbers; it
draws nothing. ``lamb_edu.plots`` turns each result into a figure, and the ``lamb-edu reproduce``
command, the notebooks and the tests all call these same functions, so they all see the same
numbers. Every experiment takes ``quick``: a smaller, faster version for CI and classrooms on a
laptop (``LAMB_EDU_QUICK=1`` forces it, see ``quick_mode``). Results are host (NumPy) arrays; a
result's ``summary()`` gives the numbers that ``results.json`` records.

1. ``debias``: exponential moving averages with and without bias correction.
2. ``from_sgd_to_lamb``: SGD, momentum, Adam, AdamW, LARS and LAMB on a two-"layer" loss.
3. ``trust_ratio_histograms``: r, r1 = ‖w‖ and r2 = ‖u‖ per layer over MNIST training.
4. ``adam_vs_lamb``: Adam against LAMB on MNIST at lr 0.01.
5. ``learning_rate_and_weight_decay``: LAMB at lr 0.01, 0.1, 0.1 with weight decay; Adam at 0.1.
6. ``article_code_claim``: lr 0.02, batch 512, weight decay 0.01, as in the article's code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Sequence

from lamb_edu import backend, nn, optim, train
from lamb_edu.autograd import Tensor
from lamb_edu.train.divergence import Divergence, detect_divergence, smoothed_loss

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = [
    "quick_mode",
    "exponential_moving_average",
    "bias_correction_factor",
    "DebiasResult",
    "debias",
    "two_layer_loss",
    "TrajectoryResult",
    "from_sgd_to_lamb",
    "MnistSetting",
    "MnistRun",
    "MnistComparison",
    "Divergence",
    "smoothed_loss",
    "detect_divergence",
    "train_mnist",
    "trust_ratio_histograms",
    "adam_vs_lamb",
    "learning_rate_and_weight_decay",
    "article_code_claim",
    "EXPERIMENTS",
    "run_experiment",
]

QUICK_ENVIRONMENT_VARIABLE = "LAMB_EDU_QUICK"


def quick_mode(default: bool = False) -> bool:
    """``default``, unless the environment variable ``LAMB_EDU_QUICK`` is set to 1/true (then True)."""
    value = os.environ.get(QUICK_ENVIRONMENT_VARIABLE, "").strip().lower()
    return True if value in ("1", "true", "yes", "on") else bool(default)


# --------------------------------------------------------------------------------------- 1. debias
def exponential_moving_average(values: Sequence[float], beta: float, bias_correction: bool = False) -> Any:
    """The moving average Adam keeps of its gradients, applied to a series.

    m₀ = 0 and m_t = β·m_{t−1} + (1 − β)·x_t for t = 1, 2, ...; with ``bias_correction`` each m_t is
    divided by (1 − βᵗ), which undoes the pull towards the zero start (Kingma & Ba 2015, section 3).
    Returns float64 m_1 ... m_T.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    values = np.asarray(values, dtype=np.float64)
    average = np.empty_like(values)
    m = 0.0
    for t, x in enumerate(values, start=1):
        m = beta * m + (1.0 - beta) * x
        average[t - 1] = m / (1.0 - beta**t) if bias_correction else m
    return average


def bias_correction_factor(beta: float, steps: Any) -> Any:
    """1 / (1 − βᵗ) for each step t (t ≥ 1): what bias correction multiplies the average by."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    steps = np.asarray(steps, dtype=np.float64)
    if steps.size and steps.min() < 1:
        raise ValueError("bias correction starts at step t = 1")
    return 1.0 / (1.0 - beta**steps)


@dataclass
class DebiasResult:
    """Experiment 1: a noisy series, its moving averages per β, and the correction factor per β."""

    x: Any  # where the curve is sampled
    data: Any  # 1 − (x/3)² plus Gaussian noise
    betas: tuple[float, ...]
    average: dict[float, Any]  # plain moving average per β
    debiased: dict[float, Any]  # the same, divided by (1 − βᵗ)
    steps: Any  # t = 1 ... T for the correction factor
    factor: dict[float, Any]  # 1 / (1 − βᵗ) per β
    seed: int

    def steps_to_within(self, beta: float, tolerance: float = 0.01) -> int:
        """The first step at which the correction factor is below 1 + ``tolerance``."""
        t = 1
        while 1.0 / (1.0 - beta**t) >= 1.0 + tolerance:
            t += 1
        return t

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: per β, the factor at t = 1, the first averages, the errors."""
        per_beta = {}
        for beta in self.betas:
            per_beta[str(beta)] = {
                "factor_at_step_1": float(self.factor[beta][0]),
                "steps_until_factor_below_1.01": self.steps_to_within(beta),
                "first_average": float(self.average[beta][0]),
                "first_debiased": float(self.debiased[beta][0]),
                "mean_abs_error_to_curve": float(np.mean(np.abs(self.average[beta] - self.curve()))),
                "mean_abs_error_to_curve_debiased": float(np.mean(np.abs(self.debiased[beta] - self.curve()))),
            }
        return {"seed": self.seed, "points": int(self.data.size), "first_data_point": float(self.data[0]), "betas": per_beta}

    def curve(self) -> Any:
        """The noiseless curve 1 − (x/3)² the averages try to follow."""
        return 1.0 - (self.x / 3.0) ** 2


def debias(
    quick: bool = False,
    seed: int = 0,
    betas: Sequence[float] = (0.5, 0.7, 0.9, 0.99),
    points: int = 200,
    noise: float = 0.1,
    factor_steps: int = 500,
) -> DebiasResult:
    """Experiment 1: smooth ``points`` samples of 1 − (x/3)² (x from −4 to 4) plus Gaussian noise.

    The series is the one of fast.ai's optimizer lesson that the article shows. For each β it returns
    the moving average with and without bias correction, and the factor 1/(1 − βᵗ) for t = 1 ...
    ``factor_steps``. The experiment is cheap, so ``quick`` changes nothing; it is accepted so every
    experiment has the same signature.
    """
    del quick
    if points < 1 or factor_steps < 1:
        raise ValueError(f"points and factor_steps must be positive, got {points} and {factor_steps}")
    rng = backend.generator(seed)
    x = np.linspace(-4.0, 4.0, points)
    data = 1.0 - (x / 3.0) ** 2 + noise * rng.standard_normal(points)
    betas = tuple(float(beta) for beta in betas)
    steps = np.arange(1, factor_steps + 1)
    return DebiasResult(
        x=x,
        data=data,
        betas=betas,
        average={beta: exponential_moving_average(data, beta) for beta in betas},
        debiased={beta: exponential_moving_average(data, beta, bias_correction=True) for beta in betas},
        steps=steps,
        factor={beta: bias_correction_factor(beta, steps) for beta in betas},
        seed=seed,
    )


# ------------------------------------------------------------------------ 2. from SGD to LAMB
# Two one-number "layers" whose weights live on scales 100× apart, like the first and last layer of a
# network: layer A's best weight is 4, layer B's is 0.04. In each layer's own units the loss is round,
#     L(a, b) = ½((a − 4)/4)² + ½((b − 0.04)/0.04)²,
# but the raw gradient of B is 100² times steeper, so one global step size cannot suit both.
LAYER_OPTIMA = {"layer A (large weights)": 4.0, "layer B (small weights)": 0.04}
LAYER_STARTS = {"layer A (large weights)": 1.0, "layer B (small weights)": 0.01}

# name -> (optimizer class name, keyword arguments); the learning rates are each rule's own scale:
# SGD's is near the largest that layer B tolerates (2·0.04² = 0.0032), Adam's and LAMB's move each
# step by about lr (Adam: in weight units; LAMB: as a fraction of the layer's weight norm).
TWO_LAYER_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD": ("SGD", {"lr": 0.003}),
    "momentum": ("SGD", {"lr": 0.003, "momentum": 0.9}),
    "Adam": ("Adam", {"lr": 0.05}),
    "AdamW": ("AdamW", {"lr": 0.05, "weight_decay": 0.01}),
    "LARS": ("LARS", {"lr": 5.0, "momentum": 0.9, "trust_coefficient": 0.001}),
    "LAMB": ("LAMB", {"lr": 0.05}),
    "LAMB without trust ratio": ("LAMB", {"lr": 0.05, "use_trust_ratio": False}),
}


def two_layer_loss(layers: Sequence[Any]) -> Any:
    """½ Σ ((w − w*)/w*)² over the two one-number layers (``Tensor``s): round in each layer's units."""
    total = None
    for layer, optimum in zip(layers, LAYER_OPTIMA.values()):
        term = ((layer - optimum) * (1.0 / optimum)) ** 2 * 0.5
        total = term if total is None else total + term
    return total.sum()


@dataclass
class TrajectoryResult:
    """Experiment 2: for each optimizer, its path on the two-layer loss and what each step did.

    Arrays are indexed [step, layer] with step 0 the start: ``weights`` (steps+1, 2); ``loss``
    (steps+1,); ``step_size`` |Δw| (steps, 2); ``trust_ratio``, ``weight_norm``, ``update_norm``
    (steps, 2) for the optimizers that record them (LARS, LAMB), else None.
    """

    layers: tuple[str, ...]
    optima: Any
    settings: dict[str, dict[str, Any]]
    weights: dict[str, Any]
    loss: dict[str, Any]
    step_size: dict[str, Any]
    trust_ratio: dict[str, Any]
    weight_norm: dict[str, Any]
    update_norm: dict[str, Any]
    steps: int

    def relative_error(self, name: str) -> Any:
        """|w − w*| / w* per step and layer: the distance to the optimum in each layer's own units."""
        return np.abs(self.weights[name] - self.optima) / self.optima

    def relative_step(self, name: str) -> Any:
        """|Δw| / |w| per step and layer: how much of its own size each layer moved."""
        return self.step_size[name] / np.abs(self.weights[name][:-1])

    def steps_to_reach(self, name: str, tolerance: float = 0.1) -> int | None:
        """The first step from which both layers stay within ``tolerance`` of their optimum (None: never)."""
        inside = (self.relative_error(name) < tolerance).all(axis=1)
        if not inside[-1]:
            return None
        outside = np.flatnonzero(~inside)
        return int(outside[-1] + 1) if outside.size else 0

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: per optimizer, its settings, final loss and step sizes."""
        out: dict[str, Any] = {"steps": self.steps, "layers": list(self.layers), "optima": self.optima.tolist()}
        for name in self.weights:
            error = self.relative_error(name)
            entry = {
                "settings": self.settings[name],
                "final_loss": float(self.loss[name][-1]),
                "final_relative_error": error[-1].tolist(),
                "steps_to_within_10_percent": self.steps_to_reach(name),
                "first_relative_step": self.relative_step(name)[0].tolist(),
                "median_relative_step": np.median(self.relative_step(name), axis=0).tolist(),
            }
            if self.trust_ratio[name] is not None:
                entry["median_trust_ratio"] = np.median(self.trust_ratio[name], axis=0).tolist()
            out[name] = entry
        return out


def _make_optimizer(class_name: str, params: list[Any], settings: dict[str, Any]) -> Any:
    return getattr(optim, class_name)(params, **settings)


def from_sgd_to_lamb(quick: bool = False, steps: int | None = None) -> TrajectoryResult:
    """Experiment 2: run SGD, momentum, Adam, AdamW, LARS and LAMB on ``two_layer_loss``.

    Each layer is its own ``Tensor`` parameter, so LARS and LAMB compute one trust ratio per layer,
    exactly as they would for the weight matrices of a network. Every optimizer starts from
    a = 1, b = 0.01 (a quarter of each optimum) and takes ``steps`` full-gradient steps (200; 120
    in quick mode). Deterministic: there is no noise.
    """
    steps = int(steps if steps is not None else (120 if quick else 200))
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")

    layers = tuple(LAYER_OPTIMA)
    optima = np.array(list(LAYER_OPTIMA.values()))
    result = TrajectoryResult(layers, optima, {}, {}, {}, {}, {}, {}, {}, steps)
    for name, (class_name, settings) in TWO_LAYER_OPTIMIZERS.items():
        params = [Tensor([LAYER_STARTS[layer]], requires_grad=True) for layer in layers]
        optimizer = _make_optimizer(class_name, params, settings)
        weights = np.empty((steps + 1, 2))
        loss = np.empty(steps + 1)
        ratios = np.full((steps, 2), np.nan)
        weight_norms = np.full((steps, 2), np.nan)
        update_norms = np.full((steps, 2), np.nan)
        for step in range(steps + 1):
            weights[step] = [float(backend.to_numpy(p.data)[0]) for p in params]
            for group in optimizer.param_groups:  # lr decays linearly to 0, as in the LAMB paper
                group["lr"] = settings["lr"] * (1.0 - step / steps)
            optimizer.zero_grad()
            value = two_layer_loss(params)
            loss[step] = value.item()
            if step == steps:
                break
            value.backward()
            optimizer.step()
            for index, p in enumerate(params):
                state = optimizer.state[p]
                if "trust_ratio" in state:
                    ratios[step, index] = state["trust_ratio"]
                    weight_norms[step, index] = state["weight_norm"]
                    update_norms[step, index] = state["update_norm"]
        records = not np.isnan(ratios).all()
        result.settings[name] = {"optimizer": class_name, **settings}
        result.weights[name] = weights
        result.loss[name] = loss
        result.step_size[name] = np.abs(np.diff(weights, axis=0))
        result.trust_ratio[name] = ratios if records else None
        result.weight_norm[name] = weight_norms if records else None
        result.update_norm[name] = update_norms if records else None
    return result


# ------------------------------------------------------------------ MNIST experiments (3 to 6)
# One network for all of them: an MLP 784 → 256 → ReLU → 256 → ReLU → 10 (the article's code used a
# small CNN; lamb-edu has no convolutions). Every run uses the LAMB rule of the article's code
# (pytorch-lamb): no bias correction, ‖w‖ clamped at 10. Its "Adam" is the same rule with the trust
# ratio computed but not used (``use_trust_ratio=False``), so both sides record r, r1 = ‖w‖, r2 = ‖u‖.
MNIST_NETWORK = (784, 256, 256, 10)
CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes: 2.303
SEEDS = (0, 1, 2)  # full runs; quick runs use the first only
QUICK_TRAIN_SIZE, QUICK_TEST_SIZE = 12000, 2000


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
    update_norm: Any  # (logs, parameters): r2 = ‖u‖
    trust_ratio: Any  # (logs, parameters): r = φ(‖w‖)/‖u‖, computed whether or not it was used
    stopped_at: int | bool
    divergence: Divergence
    seconds: float

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
        }


@dataclass
class MnistComparison:
    """Several settings, each trained from several seeds on the same data (experiments 3 to 6)."""

    name: str
    settings: list[MnistSetting]
    seeds: tuple[int, ...]
    runs: dict[str, list[MnistRun]]  # setting label -> one run per seed, in the order of ``seeds``
    network: tuple[int, ...]
    train_size: int
    test_size: int
    quick: bool
    article: dict[str, str]  # what the article reports, per setting label

    def final_accuracies(self, label: str) -> Any:
        """The final test accuracy of setting ``label`` from each seed, in the order of ``seeds``."""
        return np.array([run.final_test_accuracy for run in self.runs[label]])

    def summary(self) -> dict[str, Any]:
        """The numbers ``results.json`` records: per setting, the accuracy over seeds and every run's summary."""
        out: dict[str, Any] = {
            "network": "MLP " + "-".join(str(size) for size in self.network),
            "train_examples": self.train_size, "test_examples": self.test_size, "seeds": list(self.seeds),
            "quick": self.quick, "settings": {},
        }
        for setting in self.settings:
            accuracies = self.final_accuracies(setting.label)
            statuses = [run.divergence.status for run in self.runs[setting.label]]
            out["settings"][setting.label] = {
                **setting.describe(),
                "final_test_accuracy_mean": float(np.mean(accuracies)),
                "final_test_accuracy_std": float(np.std(accuracies)),
                "final_test_accuracy_min": float(np.min(accuracies)),
                "final_test_accuracy_max": float(np.max(accuracies)),
                "status_per_seed": statuses,
                "article": self.article.get(setting.label),
                "runs": [run.summary() for run in self.runs[setting.label]],
            }
        return out


_RUN_CACHE: dict[tuple, MnistRun] = {}  # runs shared by experiments 3, 4 and 5 are trained once per process


def train_mnist(
    setting: MnistSetting, seed: int, data: Any, train_size: int | None = None, log_every: int = 5,
    on_step: Any = None,
) -> MnistRun:
    """Train ``MLP(MNIST_NETWORK)`` from ``seed`` with ``setting`` on ``data`` (``data.MNIST``) and record it.

    The seed fixes the initial weights and the order of the batches, so a run is deterministic. The
    per-layer norms and trust ratios are logged every ``log_every`` steps; ``on_step(step)``, if
    given, is called at each of those steps (for a progress bar).
    """
    key = (setting, seed, train_size, len(data.test_labels), log_every)
    if key in _RUN_CACHE:
        return _RUN_CACHE[key]
    model = nn.MLP(list(MNIST_NETWORK), seed=seed)
    optimizer = setting.make_optimizer(model.parameters())

    def callback(event: dict[str, Any]) -> None:
        if on_step is not None and event["type"] == "step":
            on_step(event["step"])

    history = train.fit(model, optimizer, data, epochs=setting.epochs, batch_size=setting.batch_size, seed=seed,
                        train_size=train_size, log_every=log_every, progress=False, callback=callback)
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
        weight_norm=table(history.weight_norm), update_norm=table(history.update_norm),
        trust_ratio=table(history.trust_ratio), stopped_at=history.diverged, seconds=history.seconds,
        divergence=Divergence("learned", None, [], math.nan),
    )
    run.divergence = detect_divergence(run.step_loss, run.weight_norm, run.log_steps, run.stopped_at)
    _RUN_CACHE[key] = run
    return run


def _compare(
    name: str, settings: Sequence[MnistSetting], seeds: Sequence[int], quick: bool, data_dir: Any,
    progress: bool, article: dict[str, str], quick_epochs: int,
) -> MnistComparison:
    """Train every setting from every seed (quick: fewer examples and ``quick_epochs``) and collect the runs."""
    from lamb_edu import data as mnist  # noqa: PLC0415  (only the MNIST experiments need the files)

    full = mnist.load_mnist(data_dir)
    train_size = QUICK_TRAIN_SIZE if quick else len(full.train_labels)
    test_size = QUICK_TEST_SIZE if quick else len(full.test_labels)
    subset = full._replace(test_images=full.test_images[:test_size], test_labels=full.test_labels[:test_size])
    if quick:
        settings = [replace(setting, epochs=quick_epochs) for setting in settings]
    seeds = tuple(int(seed) for seed in (seeds if seeds is not None else (SEEDS[:1] if quick else SEEDS)))
    jobs = [(setting, seed) for setting in settings for seed in seeds]
    steps_per_run = [setting.epochs * math.ceil(train_size / setting.batch_size) for setting, _ in jobs]
    bar = _progress(progress, sum(steps_per_run), name)
    runs: dict[str, list[MnistRun]] = {setting.label: [] for setting in settings}
    done = 0
    for (setting, seed), steps in zip(jobs, steps_per_run):
        if bar is not None:
            bar.set_postfix_str(f"{setting.label}, seed {seed}")
        on_step = (lambda step, start=done: bar.update(start + step - bar.n)) if bar is not None else None
        runs[setting.label].append(train_mnist(setting, seed, subset, train_size if quick else None, on_step=on_step))
        done += steps
        if bar is not None:
            bar.update(done - bar.n)  # a run that stopped early, or came from the cache
    if bar is not None:
        bar.close()
    return MnistComparison(name, list(settings), seeds, runs, MNIST_NETWORK, train_size, test_size, quick, article)


def _progress(enabled: bool, total: int, description: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=description, unit="step", dynamic_ncols=True)


# 3 and 4: Adam against LAMB at lr 0.01, betas (0.9, 0.99)
ADAM_VS_LAMB = (
    MnistSetting("Adam lr 0.01", lr=0.01, betas=(0.9, 0.99), use_trust_ratio=False),
    MnistSetting("LAMB lr 0.01", lr=0.01, betas=(0.9, 0.99)),
)


def adam_vs_lamb(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False) -> MnistComparison:
    """Experiment 4: Adam against LAMB on MNIST at lr 0.01, betas (0.9, 0.99), batch 512.

    Training loss and test accuracy against steps, from each seed. Full: 5 epochs of the 60000
    training images, tested on all 10000; quick: 8 epochs of 12000 from seed 0, tested on 2000.
    """
    article = {"Adam lr 0.01": "very similar to LAMB", "LAMB lr 0.01": "similar to Adam, better test accuracy"}
    return _compare("adam_vs_lamb", ADAM_VS_LAMB, seeds, quick, data_dir, progress, article, quick_epochs=8)


def trust_ratio_histograms(quick: bool = False, seed: int = 0, data_dir: Any = None, progress: bool = False) -> MnistComparison:
    """Experiment 3: the runs of experiment 4 from one seed, for their logged r, r1 and r2 per layer.

    Both LAMB and its Adam baseline compute the trust ratio r = φ(‖w‖)/‖u‖, the weight norm r1 = ‖w‖
    and the update norm r2 = ‖u‖ of every parameter (every 5 steps); only LAMB steps with r.
    """
    article = {"Adam lr 0.01": "r starts below 1", "LAMB lr 0.01": "r starts below 1 (a natural warm-up), then rises"}
    return _compare("trust_ratio", ADAM_VS_LAMB, (seed,), quick, data_dir, progress, article, quick_epochs=8)


# 5: learning rate and weight decay
LEARNING_RATE_AND_WEIGHT_DECAY = (
    ADAM_VS_LAMB[1],
    MnistSetting("LAMB lr 0.1", lr=0.1, betas=(0.9, 0.99)),
    MnistSetting("LAMB lr 0.1, wd 0.01", lr=0.1, betas=(0.9, 0.99), weight_decay=0.01),
    MnistSetting("Adam lr 0.1", lr=0.1, betas=(0.9, 0.99), use_trust_ratio=False),
)


def learning_rate_and_weight_decay(
    quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False,
) -> MnistComparison:
    """Experiment 5: LAMB at lr 0.01, 0.1, and 0.1 with weight decay 0.01; Adam at 0.1.

    Each run gets a verdict from ``detect_divergence`` (learned, diverged and why, did not learn).
    Same data as experiment 4: 5 epochs (quick: 12 epochs of 12000, long enough to see the lr 0.1
    runs turn).
    """
    article = {
        "LAMB lr 0.01": "learns",
        "LAMB lr 0.1": "converges almost at once, then some layers' weights explode and it diverges",
        "LAMB lr 0.1, wd 0.01": "does not diverge; the trust ratio reaches about 4.5",
        "Adam lr 0.1": "does not learn at all",
    }
    return _compare("learning_rate_and_weight_decay", LEARNING_RATE_AND_WEIGHT_DECAY, seeds, quick, data_dir,
                    progress, article, quick_epochs=12)


# 6: the claim of the article's code (pytorch-lamb's README): lr 0.02, batch 512, wd 0.01
ARTICLE_CODE = (
    MnistSetting("Adam lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, use_trust_ratio=False, epochs=6),
    MnistSetting("LAMB lr 0.02, wd 0.01", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, epochs=6),
)


def article_code_claim(quick: bool = False, seeds: Sequence[int] | None = None, data_dir: Any = None, progress: bool = False) -> MnistComparison:
    """Experiment 6: the article code's sample run, lr 0.02, batch 512, weight decay 0.01, betas (0.9, 0.999).

    No bias correction and ‖w‖ clamped at 10, for 6 epochs (quick: 4 epochs of 12000). Its README
    reports that Adam does not train (about 11 % test accuracy) while LAMB reaches about 98 %.
    """
    article = {"Adam lr 0.02, wd 0.01": "about 11 % test accuracy", "LAMB lr 0.02, wd 0.01": "about 98 % test accuracy"}
    return _compare("article_code", ARTICLE_CODE, seeds, quick, data_dir, progress, article, quick_epochs=4)


# ------------------------------------------------------------------------------ all of them
EXPERIMENTS = {
    "debias": debias,
    "sgd_to_lamb": from_sgd_to_lamb,
    "trust_ratio": trust_ratio_histograms,
    "adam_vs_lamb": adam_vs_lamb,
    "lr_and_weight_decay": learning_rate_and_weight_decay,
    "article_code": article_code_claim,
}
MNIST_EXPERIMENTS = ("trust_ratio", "adam_vs_lamb", "lr_and_weight_decay", "article_code")


def run_experiment(name: str, quick: bool = False, data_dir: Any = None, progress: bool = False) -> Any:
    """Run the experiment called ``name`` (a key of ``EXPERIMENTS``) with its default settings."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if name in MNIST_EXPERIMENTS:
        return EXPERIMENTS[name](quick=quick, data_dir=data_dir, progress=progress)
    return EXPERIMENTS[name](quick=quick)
