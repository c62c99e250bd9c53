"""The ``Optimizer`` base class, shaped like ``torch.optim.Optimizer``.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"``, a list of ``Tensor``s, plus every
hyperparameter of that group) and ``state`` (a dict per parameter, keyed by the ``Tensor``, created at
the parameter's first step). ``step()`` checks every gradient first (a floating array of its
parameter's shape, no NaN or inf), so a bad one raises and leaves all parameters and all state as
they were; then it calls the subclass's rule, ``update``, once per parameter with a gradient (a
parameter whose grad is ``None`` is skipped).

``state_dict()`` gives plain numbers and host NumPy arrays, shaped like PyTorch's, plus the class::

    {"optimizer": "LAMB",
     "state": {0: {"step": 3, "m": array, "v": array, ...}, 1: {...}},
     "param_groups": [{"params": [0, 1], "lr": 0.001, ...}]}

where parameters are numbered across all groups in order. ``load_state_dict`` checks all of it
(``check_state_dict``) before it changes anything.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.optim.checks import (
    all_finite,
    all_finite_together,
    check_gradient,
    check_non_negative,
    describe_parameter,
)
from lamb_edu.optim.functional import RENAMED_TRUST_KEYS, global_norm_scale
from lamb_edu.optim.serialization import flatten_state_dict, host_copy, unflatten_state_dict

__all__ = ["Optimizer", "Visit", "flatten_state_dict", "unflatten_state_dict", "all_finite", "describe_parameter"]

Visit = tuple[Tensor, Any, dict[str, Any], dict[str, Any]]  # (parameter, gradient, its group, its state)


class Optimizer:
    """Base class: a subclass gives ``defaults``, ``_check_group``, ``_init_state`` and its rule, ``update``."""

    # what a parameter's state may hold: name -> "array" (shaped like the parameter), "int" or "float"
    state_keys: Mapping[str, str] = {"step": "int"}
    # the same rule in optim.fused (blocked, threaded, CUDA kernels), run when self.fused: a method
    # fused_update(visits, grad_scale) that steps the visits it can take and returns the rest
    fused_update: Callable[[list[Visit], float], list[Visit]] | None = None
    fused = False
    max_grad_norm: float | None = None  # clip the global gradient norm to this before the update (LAMB)
    # the rule squares g (Adam's v, Adagrad, RMSprop): a g whose square overflows is refused like a NaN
    squares_gradient = False

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
        checked before any parameter or state is changed. With ``max_grad_norm`` all gradients are
        scaled together by ``grad_scale`` (the caller's arrays are not changed).
        """
        loss = closure() if closure is not None else None
        self.check_gradients()
        visits = self._visits()
        grad_scale = global_norm_scale((grad for _, grad, _, _ in visits), self.max_grad_norm)
        self._apply_rule(visits, grad_scale)
        return loss

    def step_parameters(self, parameters: Iterable[Tensor]) -> None:
        """The rule on ``parameters`` only (those with a gradient): one part of a step, as ``step`` takes it.

        For a caller that steps a model in parts and has checked every gradient of the step itself
        (``distributed.BucketSteps``, bucket by bucket): nothing is checked here. Every rule here is
        per parameter, so the parts add up to ``step``; a global clip (``max_grad_norm``) is not, and refused.
        """
        if self.max_grad_norm is not None:
            raise ValueError("step_parameters cannot clip the global gradient norm (max_grad_norm): use step()")
        self._apply_rule(self._visits({id(p) for p in parameters}), 1.0)

    def _apply_rule(self, visits: list[Visit], grad_scale: float) -> None:
        if self.fused and self.fused_update is not None:  # the same rule, computed faster; returns what it cannot take
            visits = self.fused_update(visits, grad_scale)
        for p, grad, group, state in visits:
            self.update(p, grad, group, state, grad_scale)

    def update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any], grad_scale: float) -> None:
        """The rule: update ``p.data`` and ``state`` in place from ``grad`` (times ``grad_scale``)."""
        raise NotImplementedError

    def check_gradients(self) -> None:
        """Raise (ValueError, FloatingPointError) naming the first parameter whose gradient is not usable."""
        present = [(p.grad, group, group_index, index) for group_index, group in enumerate(self.param_groups)
                   for index, p in enumerate(group["params"]) if p.grad is not None]
        for entry in present:
            check_gradient(*entry, finite=False)
        squares = self.squares_gradient
        if not all_finite_together([entry[0] for entry in present], squares):  # one wait for a GPU, not one per tensor
            for entry in present:
                check_gradient(*entry, squares=squares)  # names the first gradient with a NaN, an inf or a huge value

    def _visits(self, only: set[int] | None = None) -> list[Visit]:
        """(p, grad, group, state) for every parameter with a gradient (whose id is in ``only``, if given),
        creating state at its first step."""
        visits = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and (only is None or id(p) in only):
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = self._init_state(p, group)
                    visits.append((p, p.grad, group, state))
        return visits

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0}

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
        """A copy of the class name, the state and the groups: plain numbers, lists, strings and host arrays."""
        index_of = {}
        groups = []
        for group in self.param_groups:
            saved = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            saved["params"] = []
            for p in group["params"]:
                index_of[p] = len(index_of)
                saved["params"].append(index_of[p])
            groups.append(saved)
        state = {index_of[p]: {name: host_copy(value) for name, value in entry.items()}
                 for p, entry in self.state.items()}
        return {"optimizer": type(self).__name__, "state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore groups and state from ``state_dict()``; ``check_state_dict`` first, so a bad one changes nothing."""
        new_groups, new_state = self.check_state_dict(state_dict)
        self.param_groups[:] = new_groups
        self.state = new_state

    def check_state_dict(
        self, state_dict: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], dict[Tensor, dict[str, Any]]]:
        """Raise ValueError unless ``state_dict`` fits this optimizer; return the groups and state it holds.

        It must come from the same class (the error names both), with the same number of groups and
        of parameters per group, the same hyperparameter names with valid values, and per parameter
        exactly the state this optimizer keeps, arrays of the parameter's shape. State keys may be
        ints or their strings (as JSON gives them back); a recorded number saved under an older name
        (``update_norm``, LARS's ``trust_denominator``) is read as ``ratio_denominator``. Nothing is
        changed. A malformed one (a group without "params", state that is not a dict) is a ValueError
        too, not a KeyError or TypeError.
        """
        try:
            return self._checked_state_dict(state_dict)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"state_dict is malformed ({type(error).__name__}: {error})") from None

    def _checked_state_dict(self, state_dict: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[Tensor, Any]]:
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        saved_class = state_dict.get("optimizer")
        if saved_class != type(self).__name__:
            raise ValueError(f"state_dict is for the optimizer {saved_class!r}, "
                             f"this optimizer is {type(self).__name__!r}")
        extra = set(state_dict) - {"optimizer", "state", "param_groups"}
        if extra or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("state_dict must have the keys 'optimizer', 'state' and 'param_groups', "
                             f"got {sorted(state_dict)}")
        new_groups = self._checked_groups(list(state_dict["param_groups"]))
        params = [p for group in self.param_groups for p in group["params"]]
        groups_of = [group for group in new_groups for _ in group["params"]]
        new_state = {}
        for key, entry in dict(state_dict["state"]).items():
            index = _parameter_index(key, len(params))
            new_state[params[index]] = self._checked_state(entry, params[index], groups_of[index], index)
        return new_groups, new_state

    def _checked_groups(self, groups: list[Any]) -> list[dict[str, Any]]:
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        new_groups = []
        for group_index, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"state_dict group {group_index} has {len(saved['params'])} parameters, "
                                 f"the optimizer's has {len(group['params'])}")
            names, expected = set(saved) - {"params", "param_names"}, set(group) - {"params", "param_names"}
            if names != expected:
                raise ValueError(f"state_dict group {group_index}: missing hyperparameters {sorted(expected - names)}, "
                                 f"unknown ones {sorted(names - expected)}")
            restored = {k: (tuple(v) if isinstance(v, list) and k != "param_names" else v) for k, v in saved.items()}
            restored["params"] = group["params"]
            self._check_group(restored)
            new_groups.append(restored)
        return new_groups

    def _checked_state(self, entry: Mapping[str, Any], p: Tensor, group: dict[str, Any], index: int) -> dict[str, Any]:
        """A parameter's saved state, checked against ``state_keys`` and the state its first step makes."""
        entry = _renamed(entry)
        required = set(self._init_state(p, group))
        if not required <= set(entry) or not set(entry) <= set(self.state_keys):
            raise ValueError(f"state_dict state[{index}] has the keys {sorted(entry)}; {type(self).__name__} needs "
                             f"{sorted(required)} and allows {sorted(self.state_keys)}")
        state = {}
        for name, value in entry.items():
            kind = self.state_keys[name]
            if kind == "array":
                if not hasattr(value, "shape") or tuple(value.shape) != p.shape:
                    raise ValueError(f"state_dict state[{index}][{name!r}] has shape {getattr(value, 'shape', None)}, "
                                     f"the parameter has {p.shape}")
                value = backend.asarray(value, dtype=p.dtype).copy()
            elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"state_dict state[{index}][{name!r}] is {value!r}, not an integer >= 0")
            elif kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"state_dict state[{index}][{name!r}] is {value!r}, not a number")
            state[name] = value
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k not in ("params", "param_names"))
            lines.append(f"  group {index}: {len(group['params'])} params, {settings}")
        return "\n".join(lines + [")"])


def _renamed(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A saved state entry with the recorded trust numbers under today's names (older checkpoints still load)."""
    if not isinstance(entry, Mapping):
        return entry  # refused by the checks that follow
    renamed = {RENAMED_TRUST_KEYS.get(name, name): value for name, value in entry.items()
               if name != "trust_denominator"}
    if "trust_denominator" in entry:  # LARS recorded its denominator twice, as update_norm and trust_denominator
        renamed.setdefault("ratio_denominator", entry["trust_denominator"])
    return renamed


def _plain(value: Any) -> Any:
    """A NumPy scalar as a Python number: an np.float64 lr would otherwise promote float32 updates."""
    return value.item() if isinstance(value, backend.np.generic) else value


def _parameter_index(key: Any, count: int) -> int:
    """The parameter number of a state key (an int, or its string from JSON); ValueError if there is none."""
    try:
        index = int(key)
    except (TypeError, ValueError):
        raise ValueError(f"state_dict has state under {key!r}, not a parameter number") from None
    if not 0 <= index < count:
        raise ValueError(f"state_dict has state for parameter {index}, the optimizer has {count} parameters")
    return index
