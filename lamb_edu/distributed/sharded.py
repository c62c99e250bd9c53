"""ZeRO stage 1: each rank keeps the optimizer state (``m``, ``v``, momentum) only for its shard.

The flat parameter buffer (``FlatParameters``) is cut into ``size`` equal shards. The gradient's
buckets are reduce-scattered, not all-reduced: rank r receives the summed gradient of its shard only
(``DataParallel.shard_gradient``), steps that shard with state for it alone, and one ``Allgather``
gives every rank all the new parameters. A ring all-reduce is a reduce-scatter followed by an
all-gather, so this moves the same bytes as plain data parallelism (Rajbhandari et al. 2020), while
the state per rank shrinks by the world size: for Adam and LAMB, 8 bytes per parameter become 8/size.

Adam and AdamW shard for free: their update is element by element, so the optimizer's own
``update`` runs unchanged on each piece of a layer. LAMB and LARS need layer norms, and a layer may
be cut between two ranks: each rank holds only its shard of ‖u‖ (LAMB) or ‖g‖ (LARS). Each rank adds
up the squares of its pieces, layer by layer, and one all-reduce of those partial sums gives every
rank every layer's norms before any weight moves. It carries two numbers per layer, Σw² and Σu² (or
Σg²): ‖w‖ could be computed locally, as every rank holds all the weights, but that reads every weight
on every rank (size times its shard), where the partial sum reads only the shard, already in cache,
for 8 more bytes per layer in the same message. (LAMB's ``max_grad_norm`` needs the global ‖g‖ before
its first pass: one more all-reduce of one number, only when it is set.)
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.autograd import Tensor
from lamb_edu.backend import xp
from lamb_edu.distributed.data_parallel import DataParallel
from lamb_edu.distributed.world import Pending
from lamb_edu.optim import fused
from lamb_edu.optim.adam import Adam
from lamb_edu.optim.functional import TRUST_KEYS, TrustRatio, global_norm_scale, squared_norm
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
        self.base, self.parallel = optimizer, data_parallel
        self.flat, self.world = data_parallel.flat, data_parallel.world
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
        self._sums = np.zeros((len(self.flat.parameters), 2), dtype=np.float64)  # per layer: ‖w‖², ‖u‖² (or ‖g‖²)
        self.steps, self._reduced_at = 0, data_parallel.steps
        data_parallel.reduce_scatter()  # from now on the gradient arrives as this rank's shard
        self.state: dict[Tensor, dict[str, Any]] = {p: {} for p in self.flat.parameters}
        self._piece_tensors = {index: Tensor(self.flat.data[start:stop]) for index, start, stop in self.pieces}

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

    def traffic(self) -> dict[str, int]:
        """Bytes each collective of a step carries: the gradient's reduce-scatter and the status
        (``DataParallel.traffic``), the parameters' all-gather, and the layer norms' all-reduce."""
        norms = 0 if self.rule == "adam" else self._sums.nbytes
        if self.rule == "lamb" and self.base.max_grad_norm is not None:
            norms += 8  # the global ‖g‖² for the clip
        return {**self.parallel.traffic(), "parameter_allgather": int(self.flat.data.nbytes),
                "layer_norms_allreduce": norms}

    # ------------------------------------------------------------------ stepping
    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        self.base.zero_grad()

    def step(self) -> None:
        """Update this rank's shard of the parameters from its shard of the summed gradient, then all-gather.

        Needs ``DataParallel.all_reduce_gradients`` first, every step (which has already refused a
        non-finite gradient on any rank).
        """
        self.begin_step()
        self.step_layers(range(len(self.flat.parameters)))
        self.end_step()

    def begin_step(self) -> None:
        """The first part of ``step``: check that the gradient was reduced, count the step."""
        if self.parallel.steps == self._reduced_at:
            raise RuntimeError("ShardedOptimizer.step() needs DataParallel.all_reduce_gradients() first, every step")
        self._reduced_at = self.parallel.steps
        self.steps += 1
        self._started = time.perf_counter()

    def step_layers(self, layers: Any) -> None:
        """Step this rank's pieces of the parameters numbered ``layers`` (whole layers: a bucket of them).

        A collective for LAMB and LARS (their layer norms): every rank calls it with the same layers.
        """
        chosen = set(layers)
        pieces = [piece for piece in self.pieces if piece[0] in chosen]
        {"lamb": self._lamb_step, "lars": self._lars_step, "adam": self._adam_step}[self.rule](pieces, sorted(chosen))

    def start_gather(self, start: int, stop: int) -> Pending:
        """Send flat ``[start, stop)`` of the new parameters (whole layers, stepped) to every rank, without waiting."""
        size = self.flat.shard_size
        counts = [max(0, min(stop, (r + 1) * size) - max(start, r * size)) for r in range(self.world.size)]
        return self.world.start_allgather(self.flat.data[start:stop], counts)

    def end_step(self, gathers: list[Pending] | None = None) -> None:
        """The last part of ``step``: record the step count, all-gather the parameters (or wait for ``gathers``,
        ``start_gather``'s of every part of the buffer)."""
        for p in self.flat.parameters:
            self.state[p]["step"] = self.steps
        gather_started = time.perf_counter()
        if gathers is None:
            self.world.allgather(self.flat.data)  # every rank's new shard to every rank
        for pending in gathers or ():
            pending.wait()
        backend.synchronize()
        if self.parallel.timings:
            self.parallel.timings[-1].update(shard_step_seconds=gather_started - self._started,
                                             gather_seconds=time.perf_counter() - gather_started)

    def _grad(self, start: int, stop: int) -> Any:
        """The summed gradient at flat positions ``[start, stop)`` of this rank's shard."""
        return self._local(self.parallel.shard_gradient, start, stop)

    def _adam_step(self, pieces: list[tuple[int, int, int]], layers: list[int]) -> None:
        # Element by element, so Adam's (and AdamW's) own update runs unchanged on each piece.
        for index, start, stop in pieces:
            state = {"step": self.steps - 1, "m": self._local(self.shard_state["m"], start, stop),
                     "v": self._local(self.shard_state["v"], start, stop)}
            self.base.update(self._piece_tensors[index], self._grad(start, stop), self.groups[index], state, 1.0)

    def _summed_norms(self, squares: dict[int, tuple[float, float]], layers: list[int]) -> Any:
        """Per layer, the norms over all ranks from this rank's sums of squares of its pieces.

        ``squares[layer]`` is (Σw², Σd²) over this rank's piece of the layer (d: LAMB's u or LARS's g);
        returns an array whose row ``layer`` is (‖w‖, ‖d‖). ``layers`` are consecutive (all of them,
        or a bucket's): only their rows are summed.
        """
        self._sums[:] = 0.0
        for index, pair in squares.items():
            self._sums[index] += pair
        # THE POINT OF SHARDING LAMB AND LARS: a layer may be cut between two ranks, so its norm is a
        # sum of squares over ranks. One all-reduce of two numbers per layer gives both norms to every
        # rank. (‖w‖ could be computed locally, every rank holds all the weights, but that reads every
        # weight on every rank: size times the shard. Adam needs no such step: it shards for free.)
        self.world.allreduce_sum(self._sums[layers[0] : layers[-1] + 1])
        return np.sqrt(self._sums)

    def _record(self, ratio_of: Callable[[int], TrustRatio], layers: list[int]) -> dict[int, float]:
        """Store each layer's ``TrustRatio`` (``ratio_of(index)``) in ``state``; return the ratios by layer."""
        ratios = {}
        for index in layers:
            measured = ratio_of(index)
            self.state[self.flat.parameters[index]].update({key: float(value)
                                                            for key, value in measured._asdict().items()})
            ratios[index] = measured.trust_ratio
        return ratios

    def _clip_scale(self) -> float:
        """LAMB's ``max_grad_norm`` factor from the global ‖g‖ (one all-reduce of one number); 1 without it."""
        if self.base.max_grad_norm is None:
            return 1.0
        squares = np.asarray([squared_norm(self.parallel.shard_gradient)])
        self.world.allreduce_sum(squares)
        return global_norm_scale([np.asarray([math.sqrt(squares[0])])], self.base.max_grad_norm)

    def _lamb_step(self, pieces: list[tuple[int, int, int]], layers: list[int]) -> None:
        if self.base.fused and self.base.fused_update is not None and isinstance(self.flat.data, backend.np.ndarray):
            return self._lamb_step_blocked(pieces, layers)  # as the unsharded step would (optim.fused)
        base, (update, work) = self.base, self._work
        grad_scale = self._clip_scale()
        for index, start, stop in pieces:  # pass 1, local: u = Adam's direction + weight_decay·w
            m, v = self._local(self.shard_state["m"], start, stop), self._local(self.shard_state["v"], start, stop)
            base.direction(self._grad(start, stop), self.flat.data[start:stop], m, v, self.groups[index],
                           step=self.steps, grad_scale=grad_scale, out=self._local(update, start, stop),
                           scratch=self._local(work, start, stop))
        norms = self._summed_norms({index: (squared_norm(self.flat.data[start:stop]),
                                            squared_norm(self._local(update, start, stop)))
                                    for index, start, stop in pieces}, layers)
        ratios = self._record(lambda i: base.trust_ratio(self.groups[i], float(norms[i, 0]), float(norms[i, 1])),
                              layers)
        for index, start, stop in pieces:  # pass 2, local: w ← w − lr·trust_ratio·u
            base.apply(self.flat.data[start:stop], self._local(update, start, stop), self.groups[index], ratios[index])

    def _lamb_step_blocked(self, pieces: list[tuple[int, int, int]], layers: list[int]) -> None:
        """The same three parts with the fused form's passes over cache-sized blocks (host arrays).

        Pass 1 runs once over each run of consecutive pieces that share their settings (a shard holds
        whole small layers one after another: one call, not one per bias); it keeps u / direction_scale
        and adds up each piece's Σw² and Σ(u / direction_scale)² block by block while the block is in
        cache (``fused.lamb_first_pass``), so ‖u‖ = direction_scale·√Σ, as in the unsharded fused step.
        """
        base, update = self.base, self._work[0]
        grad_scale = self._clip_scale()
        numbers = {index: self._lamb_numbers(index, grad_scale) for index in layers}
        m, v = self.shard_state["m"], self.shard_state["v"]
        squares = {}
        for run in self._runs(pieces):  # pass 1, local: m, v, u and the pieces' sums of squares
            start, stop = run[0][1], run[-1][2]
            sums, _ = fused.lamb_first_pass(
                self.flat.data[start:stop], self._grad(start, stop), self._local(m, start, stop),
                self._local(v, start, stop), numbers[run[0][0]], out=self._local(update, start, stop),
                pieces=[(first - start, last - start) for _, first, last in run])
            squares.update({index: pair for (index, _, _), pair in zip(run, sums)})
        norms = self._summed_norms(squares, layers)
        ratios = self._record(lambda i: base.trust_ratio(self.groups[i], float(norms[i, 0]),
                                                         numbers[i].direction_scale * float(norms[i, 1])), layers)
        for index, start, stop in pieces:  # pass 2, local: w ← w − lr·trust_ratio·u
            fused.lamb_second_pass(self.flat.data[start:stop], self._local(m, start, stop),
                                   self._local(v, start, stop), self._local(update, start, stop), numbers[index],
                                   base.step_size(self.groups[index], ratios[index]))

    def _runs(self, pieces: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
        """``pieces`` in runs of consecutive ones whose layers share a parameter group (so the same numbers)."""
        runs: list[list[tuple[int, int, int]]] = []
        for piece in pieces:
            if runs and self.groups[runs[-1][-1][0]] is self.groups[piece[0]] and runs[-1][-1][2] == piece[1]:
                runs[-1].append(piece)
            else:
                runs.append([piece])
        return runs

    def _lamb_numbers(self, index: int, grad_scale: float) -> fused.LambNumbers:
        """The scalars of this step for layer ``index`` (its group's settings)."""
        group = self.groups[index]
        beta1, beta2 = group["betas"]
        return fused.lamb_numbers(beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                                  step=self.steps, bias_correction=group["bias_correction"], grad_scale=grad_scale,
                                  grad_averaging=group["grad_averaging"])

    def _lars_step(self, pieces: list[tuple[int, int, int]], layers: list[int]) -> None:
        base = self.base
        norms = self._summed_norms({index: (squared_norm(self.flat.data[start:stop]),
                                            squared_norm(self._grad(start, stop))) for index, start, stop in pieces},
                                   layers)
        for index in layers:
            self.state[self.flat.parameters[index]]["grad_norm"] = float(norms[index, 1])
        ratios = self._record(lambda i: base.local_lr(self.groups[i], float(norms[i, 0]), float(norms[i, 1])), layers)
        for index, start, stop in pieces:  # LARS's momentum step with the layer's local_lr, on this piece
            out, look_ahead = (self._local(work, start, stop) for work in self._work)
            base.momentum_step(self.flat.data[start:stop], self._grad(start, stop),
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
        kept = ("step", "grad_norm", *TRUST_KEYS)
        self.state = {p: {key: value for key, value in restored.get(p, {}).items() if key in kept}
                      for p in self.flat.parameters}
        for index, start, stop in self.pieces:
            offset, p = self.flat.offsets[index], self.flat.parameters[index]
            for name, shard in self.shard_state.items():
                if p in restored:
                    whole = backend.asarray(restored[p][name]).reshape(-1)
                    self._local(shard, start, stop)[...] = whole[start - offset : stop - offset]
