"""What an all-reduce costs: measured, fitted to latency + bytes / bandwidth, and the ring model.

A ring all-reduce over p workers sends the message around the ring twice in p pieces (a
reduce-scatter, then an all-gather): 2(p−1) hops, each paying the link latency α and moving
bytes/p at the link bandwidth β::

    T(p) = 2(p−1)·α + 2(p−1)/p · bytes / β

The bandwidth term hardly grows with p (it tends to 2·bytes/β), the latency term grows linearly:
many workers want few, large all-reduces, which is what a large batch gives (fewer steps per epoch).
A reduce-scatter and an all-gather are each half of that ring: (p−1) hops of bytes/p.

Fitting α and β to measured times: a plain least-squares line is dominated by the largest messages
(their seconds are the largest numbers), and its intercept can be several times the time of a small
all-reduce. ``fit_latency_bandwidth`` minimises the relative error instead, so a 4 KiB message
weighs as much as a 4 MiB one.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from lamb_edu import backend
from lamb_edu.backend import xp
from lamb_edu.distributed.world import World

np = backend.np  # host NumPy for the fit

__all__ = ["ring_allreduce_seconds", "fit_latency_bandwidth", "ring_link_from_fit", "measure_allreduce",
           "predict_data_parallel_step", "ring_bytes_per_rank", "RING_SHARE"]

# Of a collective's payload, the share each rank sends in the ring algorithm, as a function of p.
RING_SHARE = {"allreduce": lambda p: 2 * (p - 1) / p, "reduce_scatter": lambda p: (p - 1) / p,
              "allgather": lambda p: (p - 1) / p}


def ring_allreduce_seconds(nbytes: float, workers: int, bandwidth: float, latency: float) -> float:
    """2(p−1)/p · nbytes/bandwidth + 2(p−1)·latency: a ring all-reduce of ``nbytes`` over ``workers``.

    ``bandwidth`` in bytes per second and ``latency`` in seconds, per link; 0 for one worker.
    """
    if workers < 1 or bandwidth <= 0 or latency < 0 or nbytes < 0:
        raise ValueError(f"need workers >= 1, bandwidth > 0, latency >= 0 and nbytes >= 0; "
                         f"got {workers}, {bandwidth}, {latency}, {nbytes}")
    hops = 2 * (workers - 1)
    return hops / workers * nbytes / bandwidth + hops * latency


def fit_latency_bandwidth(nbytes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Fit ``seconds ≈ latency + nbytes / bandwidth`` minimising the relative error; returns ``(latency, bandwidth)``.

    Each point's residual is divided by its measured time, so small messages (which fix the
    latency) count as much as large ones (which fix the bandwidth). Needs two or more distinct sizes,
    positive times, and a time that grows with the size.
    """
    x, y = np.asarray(nbytes, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    if x.shape != y.shape or len(np.unique(x)) < 2:
        raise ValueError(f"need matching sizes and times with at least two distinct sizes, got {x.shape} and {y.shape}")
    if not np.all(y > 0):
        raise ValueError("every measured time must be positive")
    design = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
    (intercept, slope), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    if slope <= 0:
        raise ValueError(f"the fitted time does not grow with the message size (slope {slope:.3g} s/byte): "
                         "measure larger messages")
    return float(intercept), float(1.0 / slope)


def ring_bytes_per_rank(traffic: dict[str, float], workers: int) -> float:
    """Bytes each rank sends in one step: Σ payload × ``RING_SHARE`` of its collective (named in each key)."""
    total = 0.0
    for name, payload in traffic.items():
        kinds = [kind for kind in RING_SHARE if name.endswith(kind)]
        if len(kinds) != 1:
            raise ValueError(f"traffic entry {name!r} must end with one of {sorted(RING_SHARE)}")
        total += payload * RING_SHARE[kinds[0]](workers)
    return total


def ring_link_from_fit(latency: float, bandwidth: float, workers: int) -> tuple[float, float]:
    """The per-link ``(latency, bandwidth)`` of the ring model from a fit of all-reduces over ``workers``.

    The fit measures T = a + bytes/b at one p; the ring model says a = 2(p−1)·α and
    1/b = 2(p−1)/(p·β), so α = a / 2(p−1) and β = 2(p−1)/p · b.
    """
    if workers < 2:
        raise ValueError(f"a ring needs at least 2 workers, got {workers}")
    hops = 2 * (workers - 1)
    return latency / hops, bandwidth * hops / workers


def measure_allreduce(world: World, sizes: Sequence[int], repeats: int = 10) -> list[dict[str, Any]]:
    """Time an in-place all-reduce of float32 buffers of each byte size in ``sizes``: the median of ``repeats``.

    Every rank must call it. Returns ``{"bytes", "seconds"}`` per size (each measurement starts
    after a barrier, so it is not the wait for a slower rank).
    """
    results = []
    for size in sizes:
        buffer = xp.ones(max(int(size) // 4, 1), dtype=xp.float32)
        world.allreduce_sum(buffer)  # warm-up: connections and buffers are set up on first use
        times = []
        for _ in range(repeats):
            world.barrier()
            started = time.perf_counter()
            world.allreduce_sum(buffer)
            backend.synchronize()
            times.append(time.perf_counter() - started)
        timing = np.asarray([float(np.median(times))])
        world.allreduce_sum(timing)  # the mean over ranks of each rank's median
        results.append({"bytes": int(buffer.nbytes), "seconds": float(timing[0]) / world.size})
    return results


def predict_data_parallel_step(parameters: float, workers: int, batch: int, *, seconds_per_example: float,
                               bandwidth: float, latency: float, bytes_per_value: int = 4,
                               overlap: float = 0.0) -> dict[str, float]:
    """On paper: one synchronous data-parallel step of a model with ``parameters`` on ``workers``, global ``batch``.

    Each worker computes ``batch/workers`` examples at ``seconds_per_example``; the gradients
    (``parameters·bytes_per_value`` bytes) go through one ring all-reduce. ``overlap`` is the share
    of the compute that can hide communication (backward, with buckets: about 2/3; 0: nothing
    overlaps); only what does not fit in it is exposed. Returns ``compute_seconds``,
    ``allreduce_seconds``, ``exposed_seconds``, ``step_seconds`` and ``efficiency`` = compute/step,
    the speed-up over one worker divided by the number of workers.
    """
    if batch < workers:
        raise ValueError(f"a batch of {batch} cannot give each of {workers} workers an example")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap is a share of the compute, between 0 and 1, got {overlap}")
    compute = batch / workers * seconds_per_example
    communicate = ring_allreduce_seconds(parameters * bytes_per_value, workers, bandwidth, latency)
    exposed = max(0.0, communicate - overlap * compute)
    return {"compute_seconds": compute, "allreduce_seconds": communicate, "exposed_seconds": exposed,
            "step_seconds": compute + exposed, "efficiency": compute / (compute + exposed)}
