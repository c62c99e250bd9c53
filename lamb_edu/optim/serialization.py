"""State dicts as ``.npz`` files: ``flatten_state_dict`` and ``unflatten_state_dict`` (no pickle).

``flatten_state_dict`` turns any state dict into ``{name: array}`` for ``np.savez`` (the non-array
parts travel as one JSON string), and ``unflatten_state_dict`` reverses it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from lamb_edu import backend

__all__ = ["flatten_state_dict", "unflatten_state_dict", "host_copy"]

JSON_KEY = "__json__"


def host_copy(value: Any) -> Any:
    """A host NumPy copy of an array (NumPy or CuPy); anything else as it is."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return backend.to_numpy(value).copy()
    return value


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
