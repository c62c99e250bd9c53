"""The ``Optimizer`` base class, shaped like ``torch.optim.Optimizer``.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"``, a list of ``Tensor``s, plus every
hyperparameter of that group) and ``state`` (a dict per parameter, keyed by the ``Tensor``, created at
the parameter's first step). ``step()`` reads each ``p.grad`` and updates ``p.data`` in place;
a parameter whose grad is ``None`` is skipped. Before anything is touched every gradient is checked,
so a NaN or inf raises ``FloatingPointError`` and leaves all parameters and all state as they were.

``state_dict()`` gives plain numbers and host NumPy arrays, shaped like PyTorch's::

    {"state": {0: {"step": 3, "m": array, "v": array, ...}, 1: {...}},
     "param_groups": [{"params": [0, 1], "lr": 0.001, ...}]}

where parameters are numbered across all groups in order. ``flatten_state_dict`` turns any such dict
into ``{name: array}`` for ``np.savez`` (the non-array parts travel as one JSON string), and
``unflatten_state_dict`` reverses it; no pickle anywhere.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim import fused

__all__ = ["Optimizer", "flatten_state_dict", "unflatten_state_dict"]

JSON_KEY = "__json__"


class Optimizer:
    """Base class: subclasses give ``defaults``, ``_check_group``, ``_init_state`` and ``_update_parameter``."""

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = {name: _plain(value) for name, value in defaults.items()}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._scratch_buffers: dict[tuple[str, int], Any] = {}
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, got a single Tensor")
        items = list(params)
        if not items:
            raise ValueError("params is an empty list: the optimizer has nothing to optimize")
        groups = items if isinstance(items[0], Mapping) else [{"params": items}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group: its own ``params`` plus any hyperparameters that differ from the defaults.

        ``params`` may hold ``Tensor``s or ``(name, Tensor)`` pairs (as ``model.named_parameters()``
        gives); names, when known, are kept in ``group["param_names"]`` for error messages.
        """
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' entry, got {group!r}")
        raw = group["params"]
        raw = [raw] if isinstance(raw, Tensor) else list(raw)
        if not raw:
            raise ValueError("params is an empty list: the optimizer has nothing to optimize")
        params, names = [], []
        for item in raw:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor):
                names.append(str(item[0]))
                item = item[1]
            if not isinstance(item, Tensor):
                raise TypeError(f"params must be Tensors, got {type(item).__name__}")
            params.append(item)
        if "param_names" in group:
            names = [str(name) for name in group["param_names"]]
        if names and len(names) != len(params):
            raise ValueError(f"param_names has {len(names)} names for {len(params)} params")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for index, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"params: parameter {index} (shape {p.shape}) is given twice")
            seen.add(id(p))
        settings = {k: _plain(v) for k, v in group.items() if k not in ("params", "param_names")}
        new_group = {**self.defaults, **settings}
        self._check_group(new_group)
        new_group["params"] = params
        if names:
            new_group["param_names"] = names
        self.param_groups.append(new_group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for a bad hyperparameter (subclasses check their own)."""
        check_non_negative("lr", group["lr"])

    # ------------------------------------------------------------------ stepping
    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given.

        The closure (which recomputes the loss and the gradients) runs first; then every gradient is
        checked for NaN/inf before any parameter or state is changed.
        """
        loss = closure() if closure is not None else None
        self.check_gradients()
        self._update()
        return loss

    def check_gradients(self) -> None:
        """Raise FloatingPointError naming the first parameter whose gradient has a NaN or inf."""
        for group_index, group in enumerate(self.param_groups):
            for index, p in enumerate(group["params"]):
                if p.grad is not None and not all_finite(p.grad):
                    raise FloatingPointError(
                        f"the gradient of {describe_parameter(group, group_index, index)} contains NaN or inf; "
                        "no parameter or optimizer state was changed"
                    )

    def _update(self) -> None:
        """Visit every parameter with a gradient, creating its state at its first step.

        A parameter on the optimizer's fast path (``_fast_path``) is updated by ``_fused_update_parameter``,
        which touches only that parameter's arrays, so ``fused.for_each_tensor`` may run several at once
        on its threads; the rest go through ``_update_parameter`` here, in order.
        """
        visits, fast_visits = [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p, group)
                visit = (p, p.grad, group, state)
                (fast_visits if self._fast_path(*visit) else visits).append(visit)
        for visit in visits:
            self._update_parameter(*visit)
        fused.for_each_tensor(lambda visit: self._fused_update_parameter(*visit), fast_visits,
                              [visit[0].data for visit in fast_visits])

    def _fast_path(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> bool:
        """True when this parameter takes the thread-safe ``optim.fused`` form (never, unless overridden)."""
        return False

    def _fused_update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        """The ``optim.fused`` form of ``_update_parameter``, for parameters where ``_fast_path`` is true."""
        raise NotImplementedError

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _update_parameter(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _l2_gradient(self, p: Tensor, grad: Any, weight_decay: float) -> Any:
        """g + weight_decay·w (weight decay as an L2 term on the gradient), or g itself when it is 0.

        The sum goes into scratch slot 1, so the caller's ``.grad`` array is never changed.
        """
        if weight_decay == 0:
            return grad
        decayed_grad = xp.multiply(p.data, weight_decay, out=self._scratch(p.data, 1))
        return xp.add(grad, decayed_grad, out=decayed_grad)

    def _scratch(self, like: Any, slot: int = 0) -> Any:
        """A temporary array shaped like ``like``: a view into one flat buffer per dtype and slot.

        The buffer is sized for the largest parameter and allocated once, so the update loop makes no
        new arrays; its contents mean nothing between calls and it is not part of the state.
        """
        key = (like.dtype.str, slot)
        buffer = self._scratch_buffers.get(key)
        if buffer is None or buffer.size < like.size:
            largest = max([p.size for g in self.param_groups for p in g["params"]] + [like.size])
            buffer = self._scratch_buffers[key] = xp.empty(largest, dtype=like.dtype)
        return buffer[: like.size].reshape(like.shape)

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """A copy of the state and the groups: plain numbers, lists, strings and host NumPy arrays."""
        index_of = {}
        groups = []
        for group in self.param_groups:
            saved = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            saved["params"] = []
            for p in group["params"]:
                index_of[p] = len(index_of)
                saved["params"].append(index_of[p])
            groups.append(saved)
        state = {index_of[p]: {name: _host_copy(value) for name, value in entry.items()} for p, entry in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore groups and state from ``state_dict()``; everything is checked before anything changes.

        Raises ValueError (and leaves the optimizer unchanged) for a different number of groups or of
        parameters per group, a state entry for an unknown parameter, an array of the wrong shape or
        a bad hyperparameter. State keys may be ints or their strings (as JSON gives them back).
        """
        groups = list(state_dict["param_groups"])
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} parameter groups, the optimizer has {len(self.param_groups)}")
        params = []
        new_groups = []
        for group_index, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"state_dict group {group_index} has {len(saved['params'])} parameters, "
                    f"the optimizer's has {len(group['params'])}"
                )
            params.extend(group["params"])
            restored = {k: (tuple(v) if isinstance(v, list) and k != "param_names" else v) for k, v in saved.items()}
            restored["params"] = group["params"]
            self._check_group(restored)
            new_groups.append(restored)
        new_state = {}
        for key, entry in dict(state_dict["state"]).items():
            index = int(key)
            if not 0 <= index < len(params):
                raise ValueError(f"state_dict has state for parameter {index}, the optimizer has {len(params)} parameters")
            p = params[index]
            new_state[p] = {}
            for name, value in entry.items():
                if hasattr(value, "shape"):
                    if tuple(value.shape) != p.shape:
                        raise ValueError(
                            f"state_dict state[{index}][{name!r}] has shape {tuple(value.shape)}, the parameter has {p.shape}"
                        )
                    value = backend.asarray(value, dtype=p.dtype).copy()
                new_state[p][name] = value
        self.param_groups[:] = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k not in ("params", "param_names"))
            lines.append(f"  group {index}: {len(group['params'])} params, {settings}")
        return "\n".join(lines + [")"])


# ---------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    """A NumPy scalar as a Python number: an np.float64 lr would otherwise promote float32 updates."""
    return value.item() if isinstance(value, backend.np.generic) else value


def check_non_negative(name: str, value: Any) -> None:
    """ValueError unless ``value`` is a number >= 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"invalid {name}: {value!r} (must be a number >= 0)")


def check_beta(name: str, value: Any) -> None:
    """ValueError unless ``0 <= value < 1`` (a decay rate of a running average)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"invalid {name}: {value!r} (must be in [0, 1))")


def check_betas(betas: Any) -> None:
    """ValueError unless ``betas`` is a pair of decay rates in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    check_beta("betas[0]", betas[0])
    check_beta("betas[1]", betas[1])


def all_finite(array: Any) -> bool:
    """True when ``array`` has no NaN or inf, in one pass over it: the sum of squares ``array·array``.

    A NaN or inf anywhere makes that sum NaN or inf, so a finite sum proves every element finite.
    A non-finite sum may also come from huge finite values overflowing the square, so only then do
    max and min decide exactly (a NaN makes max NaN, +inf shows in max, -inf in min). One reduction
    instead of two, and no temporary array (``isfinite(array).all()`` would make a mask as big as the
    gradient).
    """
    if math.isfinite(float(xp.vdot(array, array))):
        return True
    return math.isfinite(float(array.max())) and math.isfinite(float(array.min()))


def describe_parameter(group: Mapping[str, Any], group_index: int, index: int) -> str:
    """'parameter 1 of group 0 (shape (4, 5), name layers.0.weight)' for error messages."""
    p = group["params"][index]
    names = group.get("param_names")
    name = f", name {names[index]!r}" if names else ""
    return f"parameter {index} of group {group_index} (shape {p.shape}{name})"


def _host_copy(value: Any) -> Any:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return backend.to_numpy(value).copy()
    return value


# ---------------------------------------------------------------------- npz files
def flatten_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``{path: array}`` for ``np.savez(file, **flat)``: arrays by their path, the rest as JSON.

    Every array in the nested dict is stored under its slash-joined path (``"state/0/m"``); the
    numbers, strings and lists, with a marker where each array was, form one JSON string stored
    under ``"__json__"``. Python floats survive JSON exactly, so a restored run is bit-identical.
    """
    arrays: dict[str, Any] = {}

    def strip(node: Any, path: str) -> Any:
        if isinstance(node, Mapping):
            return {str(key): strip(value, f"{path}{key}/") for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [strip(value, f"{path}{i}/") for i, value in enumerate(node)]
        if hasattr(node, "shape") and hasattr(node, "dtype"):
            key = path.rstrip("/")
            arrays[key] = backend.to_numpy(node)
            return {"__array__": key}
        if hasattr(node, "item"):  # a NumPy scalar
            return node.item()
        return node

    skeleton = strip(state_dict, "")
    arrays[JSON_KEY] = backend.np.array(json.dumps(skeleton))
    return arrays


def unflatten_state_dict(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``flatten_state_dict`` (for ``np.load(file, allow_pickle=False)``).

    Dict keys come back as strings; ``load_state_dict`` accepts ``"0"`` for parameter ``0``.
    """

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"__array__"}:
                return backend.np.array(flat[node["__array__"]])
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        return node

    return fill(json.loads(str(flat[JSON_KEY][()])))
