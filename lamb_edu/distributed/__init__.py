"""Data-parallel training on MPI: the world, gradient buckets overlapped with backward, ZeRO-1, and costs.

- ``world``: ``get_world()`` is ``COMM_WORLD`` under ``mpiexec`` (mpi4py, imported only then) or a
  one-process world with the same methods; ``signals``: any signal to a rank ends the whole job.
- ``flat``: ``FlatParameters``, every parameter and gradient in one contiguous buffer.
- ``buckets``: ``GradientBuckets``, the gradient's reductions started during backward, the status inside.
- ``data_parallel``: ``DataParallel`` (the batch slice, the averaged gradient, per-step timings) and
  ``RankFailure``.
- ``sharded``: ``ShardedOptimizer``, ZeRO stage 1 (reduce-scatter, all-gather) for LAMB, LARS, Adam and AdamW.
- ``bucket_steps``: ``BucketSteps``, the optimizer's step taken bucket by bucket as each bucket's sum arrives.
- ``cost``: the ring all-reduce model and the latency/bandwidth fit.
"""

from lamb_edu.distributed.bucket_steps import BucketSteps
from lamb_edu.distributed.buckets import GradientBuckets, plan_buckets
from lamb_edu.distributed.cost import (
                                       fit_latency_bandwidth,
                                       measure_allreduce,
                                       predict_data_parallel_step,
                                       ring_allreduce_seconds,
                                       ring_bytes_per_rank,
                                       ring_link_from_fit,
)
from lamb_edu.distributed.data_parallel import (
    DEFAULT_BUCKET_MB,
    DataParallel,
    RankFailure,
    check_batch_size,
    resolve_bucket_mb,
)
from lamb_edu.distributed.flat import FlatParameters
from lamb_edu.distributed.sharded import ShardedOptimizer, sharding_rule
from lamb_edu.distributed.world import LocalWorld, MPIWorld, World, get_world, launched_by_mpi

__all__ = [
    "World", "LocalWorld", "MPIWorld", "get_world", "launched_by_mpi",
    "FlatParameters", "GradientBuckets", "plan_buckets", "DEFAULT_BUCKET_MB", "resolve_bucket_mb",
    "DataParallel", "RankFailure", "check_batch_size", "ShardedOptimizer", "sharding_rule", "BucketSteps",
    "ring_allreduce_seconds", "fit_latency_bandwidth", "ring_link_from_fit", "measure_allreduce",
    "predict_data_parallel_step", "ring_bytes_per_rank",
]
