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

__all__ = ["LAYER_OPTIMA", "LAYER_STARTS", "TWO_LAYER_OPTIMIZERS", "two_layer_loss", "TrajectoryResult", "from_sgd_to_lamb"]

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
        optimizer = getattr(optim, class_name)(params, **settings)
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
