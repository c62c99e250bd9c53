"""ZeRO stage 1: each rank keeps the optimizer state (``m``, ``v``, momentum) only for its shard.

After the gradient all-reduce every rank holds the whole averaged gradient, yet updates only its
equal shard of the flat parameter buffer (``FlatParameters``), with state for that shard alone; an
``Allgather`` then gives every rank all the new parameters. The state per rank shrinks by the world
size: for Adam and LAMB, 8 bytes per parameter become 8/size.

Adam and AdamW shard for free: their update is element by element, so the optimizer's own
``update`` runs unchanged on each piece of a layer. LAMB and LARS do not: their trust
ratio needs ‖w‖ and ‖update‖ of the whole layer, and a layer may be cut between two ranks. Each rank
therefore adds up the squares of its pieces, layer by layer, and one small all-reduce of those
partial sums (two numbers per layer) gives every rank every layer's norms, before any weight moves.
"""

from __future__ import annotations

from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.distributed.data_parallel import DataParallel
from lamb_edu.optim.adam import Adam
from lamb_edu.optim.functional import TRUST_KEYS, TrustRatio, global_norm_scale
from lamb_edu.optim.lamb import LAMB
from lamb_edu.optim.lars import LARS

np = backend.np  # host NumPy for the per-layer sums

__all__ = ["ShardedOptimizer", "sharding_rule"]

STATE_NAMES = {"lamb": ("m", "v"), "lars": ("momentum_buffer",), "adam": ("m", "v")}


def sharding_rule(optimizer: Any) -> str:
    """'lamb', 'lars' or 'adam' (Adam and AdamW), or ValueError for an optimizer that cannot be sharded here."""
    if isinstance(optimizer, LAMB):
        return "lamb"
    if isinstance(optimizer, LARS):
        return "lars"
    if isinstance(optimizer, Adam):
        if any(group["amsgrad"] for group in optimizer.param_groups):
            raise ValueError("ShardedOptimizer does not support amsgrad=True")
        return "adam"
    raise ValueError(f"ShardedOptimizer supports LAMB, LARS, Adam and AdamW, got {type(optimizer).__name__}")


class ShardedOptimizer:
    """``ShardedOptimizer(optimizer, data_parallel)``: the step of a LAMB, LARS, Adam or AdamW with its state sharded.

    ``optimizer`` gives the rule and the hyperparameters (its ``param_groups`` are shared, so a
    learning-rate scheduler works on either); it must hold no state yet. ``state[p]`` holds the
    ``step`` and, for LAMB and LARS, the layer's ``weight_norm``, ``ratio_denominator`` and ``trust_ratio``
    (known on every rank), as the unsharded optimizers record them.
    """

    def __init__(self, optimizer: Any, data_parallel: DataParallel) -> None:
        self.rule = sharding_rule(optimizer)
        if optimizer.state:
            raise ValueError("ShardedOptimizer needs an optimizer without state: restore one with load_state_dict")
        self.base, self.flat, self.world = optimizer, data_parallel.flat, data_parallel.world
        self.param_groups = optimizer.param_groups
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        if set(group_of) != {id(p) for p in self.flat.parameters}:
            raise ValueError("the optimizer and the data-parallel model must hold the same parameters")
        self.groups = [group_of[id(p)] for p in self.flat.parameters]
        self.start = self.flat.shard_range(self.world.rank)[0]
        self.pieces = self.flat.pieces(self.world.rank)
        shard = self.flat.shard_size
        dtype = self.flat.data.dtype
        self.shard_state = {name: xp.zeros(shard, dtype=dtype) for name in STATE_NAMES[self.rule]}
        self._work = [xp.zeros(shard, dtype=dtype) for _ in range(2 if self.rule != "adam" else 0)]
        self._sums = np.zeros((2, len(self.flat.parameters)), dtype=np.float64)
        self.steps = 0
        self.state: dict[Tensor, dict[str, Any]] = {p: {} for p in self.flat.parameters}
        self._piece_tensors = [Tensor(self.flat.data[start:stop]) for _, start, stop in self.pieces]

    @property
    def saves_as(self) -> Any:
        """The optimizer whose ``state_dict`` this one saves and loads (the base): a checkpoint names its class."""
        return self.base

    def _local(self, array: Any, start: int, stop: int) -> Any:
        """Flat positions ``[start, stop)`` of a shard-length array (state or workspace) of this rank."""
        return array[start - self.start : stop - self.start]

    def state_bytes(self) -> dict[str, int]:
        """Bytes of optimizer state: ``per_rank`` here, ``unsharded`` for the same optimizer on one process."""
        per_element = self.flat.data.itemsize * len(self.shard_state)
        return {"per_rank": per_element * self.flat.shard_size, "unsharded": per_element * self.flat.numel}

    # ------------------------------------------------------------------ stepping
    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        self.base.zero_grad()

    def step(self) -> None:
        """Update this rank's shard of the parameters, then all-gather the shards into every rank's parameters.

        Raises FloatingPointError, changing nothing, when a gradient holds NaN or inf.
        """
        self.flat.gather_gradients()  # a no-op after DataParallel.all_reduce_gradients
        self.base.check_gradients()
        self.steps += 1
        {"lamb": self._lamb_step, "lars": self._lars_step, "adam": self._adam_step}[self.rule]()
        for p in self.flat.parameters:
            self.state[p]["step"] = self.steps
        self.world.allgather(self.flat.data)  # every rank's new shard to every rank

    def _adam_step(self) -> None:
        # Element by element, so Adam's (and AdamW's) own update runs unchanged on each piece.
        for (index, start, stop), piece in zip(self.pieces, self._piece_tensors):
            state = {"step": self.steps - 1, "m": self._local(self.shard_state["m"], start, stop),
                     "v": self._local(self.shard_state["v"], start, stop)}
            self.base.update(piece, self.flat.grad[start:stop], self.groups[index], state, 1.0)

    def _layer_norms(self, first: Callable[[int, int], Any], second: Callable[[int, int], Any]) -> tuple[Any, Any]:
        """Per layer, ‖first‖ and ‖second‖ over all ranks; ``first(start, stop)`` gives a piece's array."""
        self._sums[:] = 0.0
        for index, start, stop in self.pieces:
            a, b = first(start, stop), second(start, stop)
            self._sums[0, index] += float(xp.dot(a, a))
            self._sums[1, index] += float(xp.dot(b, b))
        # THE POINT OF SHARDING LAMB AND LARS: a layer may be cut between two ranks, so its ‖w‖ and
        # ‖update‖ are sums of squares over ranks. One all-reduce of 2 numbers per layer gives them
        # to every rank. (Adam needs no such step: it shards for free.)
        self.world.allreduce_sum(self._sums)
        return np.sqrt(self._sums[0]), np.sqrt(self._sums[1])

    def _record(self, ratio_of: Callable[[int], TrustRatio]) -> list[float]:
        """Store each layer's ``TrustRatio`` (``ratio_of(index)``) in ``state``; return the ratios."""
        ratios = []
        for index, p in enumerate(self.flat.parameters):
            measured = ratio_of(index)
            self.state[p].update({key: float(value) for key, value in measured._asdict().items()})
            ratios.append(measured.trust_ratio)
        return ratios

    def _lamb_step(self) -> None:
        base, (update, work) = self.base, self._work
        grad_scale = global_norm_scale([self.flat.grad], base.max_grad_norm)  # the whole averaged gradient is here
        for index, start, stop in self.pieces:  # pass 1, local: u = Adam's direction + weight_decay·w
            m, v = self._local(self.shard_state["m"], start, stop), self._local(self.shard_state["v"], start, stop)
            base.direction(self.flat.grad[start:stop], self.flat.data[start:stop], m, v, self.groups[index],
                           step=self.steps, grad_scale=grad_scale, out=self._local(update, start, stop),
                           scratch=self._local(work, start, stop))
        weight_norms, update_norms = self._layer_norms(lambda a, b: self.flat.data[a:b],
                                                       lambda a, b: self._local(update, a, b))
        ratios = self._record(lambda i: base.trust_ratio(self.groups[i], float(weight_norms[i]),
                                                         float(update_norms[i])))
        for index, start, stop in self.pieces:  # pass 2, local: w ← w − lr·trust_ratio·u
            base.apply(self.flat.data[start:stop], self._local(update, start, stop), self.groups[index], ratios[index])

    def _lars_step(self) -> None:
        base = self.base
        weight_norms, grad_norms = self._layer_norms(lambda a, b: self.flat.data[a:b], lambda a, b: self.flat.grad[a:b])
        for p, grad_norm in zip(self.flat.parameters, grad_norms):
            self.state[p]["grad_norm"] = float(grad_norm)
        ratios = self._record(lambda i: base.local_lr(self.groups[i], float(weight_norms[i]), float(grad_norms[i])))
        for index, start, stop in self.pieces:  # LARS's momentum step with the layer's local_lr, on this piece
            out, look_ahead = (self._local(work, start, stop) for work in self._work)
            base.momentum_step(self.flat.data[start:stop], self.flat.grad[start:stop],
                               self._local(self.shard_state["momentum_buffer"], start, stop), self.groups[index],
                               ratios[index], out=out, look_ahead=look_ahead)

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """The unsharded optimizer's ``state_dict()`` (whole ``m``, ``v``...), so any world size can resume it.

        A collective: every rank must call it (each gathers the others' shards); rank 0 writes it.
        """
        full = {}
        for name, shard in self.shard_state.items():
            buffer = xp.zeros_like(self.flat.data)
            buffer[self.start : self.start + self.flat.shard_size] = shard
            self.world.allgather(buffer)
            full[name] = buffer
        saved = self.base.state_dict()
        saved["state"] = {}
        for index, p in enumerate(self.flat.parameters):
            entry = {key: value for key, value in self.state[p].items()}
            entry.update({name: backend.to_numpy(self.flat.view(buffer, index)).copy()
                          for name, buffer in full.items()})
            saved["state"][index] = entry
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from a ``state_dict()`` of this class or of the unsharded optimizer, written by any world size.

        Every rank reads the same whole arrays and keeps its shard of them; no collective is needed.
        """
        self.base.load_state_dict(state_dict)  # checks groups, shapes and hyperparameters; may replace the group dicts
        restored, self.base.state = self.base.state, {}
        steps = {int(entry["step"]) for entry in restored.values()}
        if len(steps) > 1 or (restored and len(restored) != len(self.flat.parameters)):
            raise ValueError("a sharded optimizer resumes only a state in which every parameter took the same steps")
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        self.groups = [group_of[id(p)] for p in self.flat.parameters]
        self.steps = steps.pop() if steps else 0
        for shard in self.shard_state.values():
            shard[...] = 0
        recorded = ("step", "grad_norm", *TRUST_KEYS)
        self.state = {p: {key: value for key, value in restored.get(p, {}).items() if key in recorded}
                      for p in self.flat.parameters}
        for index, start, stop in self.pieces:
            offset, p = self.flat.offsets[index], self.flat.parameters[index]
            for name, shard in self.shard_state.items():
                if p in restored:
                    whole = backend.asarray(restored[p][name]).reshape(-1)
                    self._local(shard, start, stop)[...] = whole[start - offset : stop - offset]
