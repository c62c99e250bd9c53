"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019, Algorithm 1): k steps forward, 1 step back.

Wraps any optimizer (the "fast" one). The slow weights φ start at the initial weights θ; the inner
optimizer updates θ as usual, and after every k of its steps::

    φ ← φ + alpha·(θ − φ)     move the slow weights part of the way towards the fast ones
    θ ← φ                     and restart the fast weights from there

The interpolation damps the oscillation of the fast weights; alpha = 1 gives back the inner optimizer.
``param_groups`` are the inner optimizer's, so learning-rate schedules work through a Lookahead.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from lamb_edu import backend
from lamb_edu.backend import xp
from lamb_edu.optim.optimizer import Optimizer

__all__ = ["Lookahead"]


class Lookahead(Optimizer):
    """``Lookahead(optimizer, k=5, alpha=0.5)``: slow weights synchronised every k inner steps."""

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer) or isinstance(optimizer, Lookahead):
            raise TypeError(f"Lookahead wraps an optimizer such as optim.Adam, got {type(optimizer).__name__}")
        _check_settings(k, alpha)
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self.k = k
        self.alpha = float(alpha)
        self.inner_steps = 0
        self.slow_weights = [p.data.copy() for p in self._params()]  # φ ← θ at the start

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @property
    def state(self) -> dict[Any, dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.state

    def _params(self) -> list[Any]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group to the inner optimizer; its slow weights start at its current weights."""
        self.optimizer.add_param_group(group)
        self.slow_weights.extend(p.data.copy() for p in self.optimizer.param_groups[-1]["params"])

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; after every k-th, pull the slow weights towards the fast ones and reset."""
        loss = self.optimizer.step(closure)  # raises (changing nothing) on a NaN gradient
        self.inner_steps += 1
        if self.inner_steps % self.k == 0:
            for p, slow in zip(self._params(), self.slow_weights):
                # φ ← (1 − alpha)·φ + alpha·θ, in place (exactly θ when alpha is 1); then θ ← φ
                xp.multiply(slow, 1.0 - self.alpha, out=slow)
                xp.multiply(p.data, self.alpha, out=p.data)
                xp.add(slow, p.data, out=slow)
                xp.copyto(p.data, slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict, ``"optimizer": "Lookahead"``, and ``"lookahead"``: k, alpha,
        the step count, φ and the inner optimizer's class."""
        state = self.optimizer.state_dict()
        state["lookahead"] = {
            "k": self.k,
            "alpha": self.alpha,
            "inner_steps": self.inner_steps,
            "inner_optimizer": state["optimizer"],
            "slow_weights": {index: backend.to_numpy(slow).copy() for index, slow in enumerate(self.slow_weights)},
        }
        state["optimizer"] = type(self).__name__
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the inner optimizer and the slow weights; all checked first, so a bad dict changes nothing."""
        if not isinstance(state_dict, Mapping) or state_dict.get("optimizer") != type(self).__name__:
            saved = state_dict.get("optimizer") if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"state_dict is for the optimizer {saved!r}, this optimizer is 'Lookahead'")
        saved = state_dict.get("lookahead")
        keys = {"k", "alpha", "inner_steps", "inner_optimizer", "slow_weights"}
        if not isinstance(saved, Mapping) or set(saved) != keys:
            raise ValueError(f"state_dict['lookahead'] must have the keys {sorted(keys)}, got {saved!r:.200}")
        _check_settings(saved["k"], saved["alpha"])
        inner_steps = saved["inner_steps"]
        if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
            raise ValueError(f"invalid inner_steps: {inner_steps!r} (must be an integer >= 0)")
        slow = {int(index): array for index, array in dict(saved["slow_weights"]).items()}
        params = self._params()
        if sorted(slow) != list(range(len(params))):
            raise ValueError(f"state_dict has slow weights for parameters {sorted(slow)}, "
                             f"the optimizer has {len(params)}")
        for index, p in enumerate(params):
            if tuple(slow[index].shape) != p.shape:
                raise ValueError(f"state_dict slow weight {index} has shape {tuple(slow[index].shape)}, "
                                 f"the parameter has {p.shape}")
        inner = {key: value for key, value in state_dict.items() if key != "lookahead"}
        inner["optimizer"] = saved["inner_optimizer"]
        self.optimizer.load_state_dict(inner)  # checks everything before it changes anything
        self.k, self.alpha, self.inner_steps = saved["k"], float(saved["alpha"]), inner_steps
        for index, p in enumerate(params):
            self.slow_weights[index][...] = backend.asarray(slow[index], dtype=p.dtype)

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"


def _check_settings(k: Any, alpha: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"invalid k: {k!r} (must be an integer >= 1)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"invalid alpha: {alpha!r} (must be in (0, 1])")
