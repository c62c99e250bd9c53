"""Parameter groups that exempt biases from weight decay and from layer adaptation.

The usual practice with LAMB and LARS (You et al. 2017, 2019; BERT): weight decay and the
trust ratio are for weight matrices. Biases (and other 1-D parameters, such as normalisation
scales) get ``weight_decay=0`` and ``use_trust_ratio=False``: LAMB and LARS then step them with a
trust ratio of 1 (LAMB still records the ratio it computed). Other optimizers ignore the flag.
"""

from __future__ import annotations

from typing import Any

__all__ = ["param_groups_no_decay"]


def param_groups_no_decay(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups for an optimizer: parameters with ≥ 2 dimensions decay, 1-D ones do not.

    ``model`` is a ``Module`` (or anything with ``named_parameters()``). The first group has
    ``weight_decay`` and the second ``weight_decay=0.0, use_trust_ratio=False``; each keeps the
    parameter names in ``param_names``. An empty group is left out.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"invalid weight_decay: {weight_decay!r} (must be a number >= 0)")
    named = list(model.named_parameters())
    decay = [(name, p) for name, p in named if p.ndim >= 2]
    no_decay = [(name, p) for name, p in named if p.ndim < 2]
    groups = []
    if decay:
        groups.append({"params": [p for _, p in decay], "param_names": [n for n, _ in decay],
                       "weight_decay": float(weight_decay)})
    if no_decay:
        groups.append({"params": [p for _, p in no_decay], "param_names": [n for n, _ in no_decay],
                       "weight_decay": 0.0, "use_trust_ratio": False})
    if not groups:
        raise ValueError("model has no parameters")
    return groups
