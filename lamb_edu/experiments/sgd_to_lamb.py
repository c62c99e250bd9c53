"""Experiment 2, from SGD to LAMB: six optimizers on a loss whose two "layers" live on scales 100× apart.

One global step size cannot suit both layers: SGD's is set by the steep small layer and crawls on
the large one; Adam steps the same absolute size in both; LARS and LAMB step each layer in
proportion to its own weight norm (the trust ratio), and reach the optimum in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from lamb_edu import backend, optim
from lamb_edu.autograd import Tensor

np = backend.np  # experiment data are small host arrays, drawn and saved on the host

__all__ = ["LAYER_OPTIMA", "LAYER_STARTS", "TWO_LAYER_OPTIMIZERS", "two_layer_loss", "TrajectoryResult",
           "run_two_layers", "from_sgd_to_lamb",
           "vector_layers_problem", "VECTOR_LAYER_OPTIMIZERS", "run_vector_layers", "vector_layers_comparison",
           "lamb_on_vector_layers"]

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
    (steps+1,); ``step_size`` |Δw| (steps, 2); ``trust_ratio``, ``weight_norm``, ``ratio_denominator``
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
    ratio_denominator: dict[str, Any]
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


def run_two_layers(optimizer_class: Any, settings: dict[str, Any], steps: int) -> dict[str, Any]:
    """Step ``optimizer_class(params, **settings)`` ``steps`` times on ``two_layer_loss``, lr decaying linearly to 0.

    Returns host arrays: ``weights`` (steps+1, 2), ``loss`` (steps+1,), and ``trust_ratio``,
    ``weight_norm``, ``ratio_denominator`` (steps, 2) when the optimizer records them (else None).
    """
    layers = tuple(LAYER_OPTIMA)
    params = [Tensor([LAYER_STARTS[layer]], requires_grad=True) for layer in layers]
    optimizer = optimizer_class(params, **settings)
    weights, loss = np.empty((steps + 1, 2)), np.empty(steps + 1)
    recorded = {key: np.full((steps, 2), np.nan) for key in ("trust_ratio", "weight_norm", "ratio_denominator")}
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
            for key, table in recorded.items():
                if key in optimizer.state[p]:
                    table[step, index] = optimizer.state[p][key]
    records = not np.isnan(recorded["trust_ratio"]).all()
    return {"weights": weights, "loss": loss, **{key: table if records else None for key, table in recorded.items()}}


def from_sgd_to_lamb(
    quick: bool = False, steps: int | None = None, optimizers: dict[str, tuple[Any, dict[str, Any]]] | None = None,
) -> TrajectoryResult:
    """Experiment 2: run SGD, momentum, Adam, AdamW, LARS and LAMB on ``two_layer_loss``.

    Each layer is its own ``Tensor`` parameter, so LARS and LAMB compute one trust ratio per layer,
    exactly as they would for the weight matrices of a network. Every optimizer starts from
    a = 1, b = 0.01 (a quarter of each optimum) and takes ``steps`` full-gradient steps (200; 120
    in quick mode). ``optimizers`` maps a name to (an ``optim`` class or its name, its settings);
    the default is ``TWO_LAYER_OPTIMIZERS``. Deterministic: there is no noise.
    """
    steps = int(steps if steps is not None else (120 if quick else 200))
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    result = TrajectoryResult(tuple(LAYER_OPTIMA), np.array(list(LAYER_OPTIMA.values())), {}, {}, {}, {}, {}, {}, {},
                              steps)
    for name, (optimizer_class, settings) in (optimizers or TWO_LAYER_OPTIMIZERS).items():
        if isinstance(optimizer_class, str):
            optimizer_class = getattr(optim, optimizer_class)
        run = run_two_layers(optimizer_class, settings, steps)
        result.settings[name] = {"optimizer": optimizer_class.__name__, **settings}
        result.weights[name] = run["weights"]
        result.loss[name] = run["loss"]
        result.step_size[name] = np.abs(np.diff(run["weights"], axis=0))
        result.trust_ratio[name] = run["trust_ratio"]
        result.weight_norm[name] = run["weight_norm"]
        result.ratio_denominator[name] = run["ratio_denominator"]
    return result


def vector_layers_problem(size: int = 50, seed: int = 0) -> dict[str, Any]:
    """Two layers of ``size`` weights with mixed curvature, 100× apart in scale (the vector form of the two-layer loss).

    Layer A's optimum has entries around 4 (‖w*‖ ≈ 4√size, above LAMB's clamp 10 for size 50), layer
    B's around 0.04; inside each layer the curvature of the coordinates spreads over 100× (0.1 to 10
    in each layer's own units). Both start at a quarter of their optimum. Returns the optima, the
    curvatures and the starts, as float64 host arrays keyed by layer name.
    """
    rng = backend.generator(seed)
    shape = rng.uniform(0.5, 1.5, size)
    curvature = np.logspace(-1, 1, size)
    optima = {layer: scale * shape for layer, scale in LAYER_OPTIMA.items()}
    return {"optima": optima, "curvature": curvature, "starts": {layer: 0.25 * w for layer, w in optima.items()}}


# name -> (optimizer class name, keyword arguments) on ``vector_layers_problem``: SGD's lr is just
# below the largest that the steepest coordinate of layer B tolerates (2·0.02²/10 = 8e-5).
VECTOR_LAYER_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD": ("SGD", {"lr": 7e-5}),
    "Adam": ("Adam", {"lr": 0.05}),
    "LAMB without trust ratio": ("LAMB", {"lr": 0.05, "use_trust_ratio": False}),
    "LAMB": ("LAMB", {"lr": 0.05}),
    "LARS": ("LARS", {"lr": 5.0, "momentum": 0.9, "trust_coefficient": 0.001}),  # notebook 02's two-layer settings
}


def run_vector_layers(optimizer_class: Any, settings: dict[str, Any], steps: int = 200,
                      size: int = 50) -> dict[str, Any]:
    """Step ``optimizer_class(params, **settings)`` on ``vector_layers_problem``, lr decaying linearly to 0.

    The loss is ½ Σ c_i ((w_i − w*_i)/w*_i)² per layer, so each layer is round only in its own
    units and, unlike the one-weight layers, u/‖u‖ is not sign(g). Returns host arrays
    ``relative_error`` ‖w − w*‖/‖w*‖ (steps + 1, 2), and (steps, 2) ``step_norm`` ‖Δw‖,
    ``weight_norm`` ‖w‖ before each step and ``trust_ratio`` (NaN for optimizers that keep none).
    """
    problem = vector_layers_problem(size)
    layers = tuple(LAYER_OPTIMA)
    params = [Tensor(problem["starts"][layer].copy(), requires_grad=True) for layer in layers]
    targets = [problem["optima"][layer] for layer in layers]
    optimizer = optimizer_class(params, **settings)
    out = {key: np.full((steps, 2), np.nan) for key in ("trust_ratio", "weight_norm", "step_norm")}
    out["relative_error"] = np.empty((steps + 1, 2))
    for step in range(steps + 1):
        now = [backend.to_numpy(p.data).astype(np.float64) for p in params]
        out["relative_error"][step] = [np.linalg.norm(w - target) / np.linalg.norm(target)
                                       for w, target in zip(now, targets)]
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = settings["lr"] * (1.0 - step / steps)
        for p, target in zip(params, targets):  # the gradient c·(w − w*)/w*², written out: no autograd needed
            gradient = problem["curvature"] * (backend.to_numpy(p.data) - target) / target**2
            p.grad = backend.asarray(gradient.astype(p.data.dtype))
        optimizer.step()
        for index, (p, old) in enumerate(zip(params, now)):
            out["weight_norm"][step, index] = np.linalg.norm(old)
            out["step_norm"][step, index] = np.linalg.norm(backend.to_numpy(p.data) - old)
            out["trust_ratio"][step, index] = optimizer.state[p].get("trust_ratio", np.nan)
    return {**out, "layers": layers}


def vector_layers_comparison(quick: bool = False, steps: int | None = None) -> dict[str, dict[str, Any]]:
    """SGD, Adam, "LAMB without trust ratio", LAMB and LARS (``VECTOR_LAYER_OPTIMIZERS``) on ``vector_layers_problem``.

    Each takes ``steps`` full-gradient steps (200; 120 in quick mode) with its lr decaying linearly to
    0; returns ``run_vector_layers``'s arrays per optimizer name, with its ``settings``.
    """
    steps = int(steps if steps is not None else (120 if quick else 200))
    return {name: {**run_vector_layers(getattr(optim, class_name), settings, steps), "settings": settings}
            for name, (class_name, settings) in VECTOR_LAYER_OPTIMIZERS.items()}


def lamb_on_vector_layers(
    lr: float = 0.05, weight_decay: float = 0.0, clamp_value: float | None = 10.0, steps: int = 200, size: int = 50,
) -> dict[str, Any]:
    """LAMB (bias-corrected, lr decaying linearly to 0) on ``vector_layers_problem``: per layer and step, r, ‖w‖, ‖Δw‖.

    ``run_vector_layers`` with ``optim.LAMB``; returns its arrays with ``lr``, ``clamp_value`` and ``weight_decay``.
    """
    settings = dict(lr=lr, weight_decay=weight_decay, clamp_value=clamp_value, fused=False)
    run = run_vector_layers(optim.LAMB, settings, steps, size)
    return {**run, "lr": lr, "clamp_value": clamp_value, "weight_decay": weight_decay}
