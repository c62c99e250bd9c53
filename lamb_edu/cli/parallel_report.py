"""What a data-parallel run adds to its folder: the world in ``summary.json``, per-step timings in ``trust.npz``."""

from __future__ import annotations

from typing import Any

from lamb_edu.distributed import ShardedOptimizer

__all__ = ["parallel_report", "parallel_timings", "parallel_series"]


def parallel_report(workers: Any, optimizer: Any) -> dict[str, Any]:
    """The world for summary.json: its size, the gradient bytes each all-reduce sends, ZeRO-1's saving."""
    flat = workers.parallel.flat
    report: dict[str, Any] = {"world_size": workers.world_size, "parameters": flat.numel,
                              "allreduce_bytes_per_step": flat.nbytes,
                              "shard_optimizer": isinstance(optimizer, ShardedOptimizer)}
    if report["shard_optimizer"]:
        state = optimizer.state_bytes()
        report["optimizer_state_bytes"] = {**state, "saved_per_rank": state["unsharded"] - state["per_rank"]}
    return report


def parallel_timings(workers: Any) -> dict[str, Any]:
    """Rank 0's mean and total compute, status, all-reduce seconds and bytes over the steps this process ran."""
    return {"timings": {"measured_on": "rank 0, the steps this process ran", **workers.parallel.timing_summary()}}


def parallel_series(workers: Any, last_step: int) -> dict[str, Any]:
    """Per-step arrays for trust.npz: ``data_parallel/step`` (the run's step numbers) and one per timing."""
    arrays = workers.parallel.timing_arrays()
    arrays["step"] = arrays["step"] - len(arrays["step"]) + last_step  # this process may have resumed a run
    return {f"data_parallel/{key}": value for key, value in arrays.items()}
