"""When is a leaf's gradient final during ``Tensor.backward()``? After the last node that uses it has run.

``backward`` visits the graph in reverse topological order; a leaf (a parameter) may be used by
several nodes, and its ``.grad`` is complete only once each of them has passed its gradient on.
These two helpers count the users of every leaf that has post-accumulate-grad hooks and call the
hooks at that moment (data-parallel training starts sending a gradient bucket there).
"""

from __future__ import annotations

from typing import Any

__all__ = ["consumers_of_hooked_leaves", "release_leaves"]


def consumers_of_hooked_leaves(order: list[Any]) -> dict[int, int]:
    """``id(leaf)``: how many nodes of the graph use it, for each leaf with hooks (empty when there is none)."""
    hooked = {id(node) for node in order if node._grad_hooks}
    users = [key for node in order for key in {id(p) for p in node._parents} if key in hooked]
    return {key: users.count(key) for key in hooked}


def release_leaves(node: Any, waiting: dict[int, int]) -> None:
    """``node`` has passed its gradient on: a hooked leaf whose last user it was has its final ``.grad``."""
    for parent in {id(p): p for p in node._parents if id(p) in waiting}.values():
        waiting[id(parent)] -= 1
        if not waiting[id(parent)]:
            for hook in parent._grad_hooks:
                hook(parent)
