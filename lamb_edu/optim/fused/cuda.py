"""The GPU form of the fused steps: Adam, AdamW and LAMB as whole CUDA kernels, compiled by CuPy.

Every kernel the library launches is in ``KERNELS_CUDA`` below, written out in full (the block
reduction of LAMB's norms included) so that a student can read exactly what runs on the GPU.
``source(dtype)`` is the exact text that is compiled for float32 or float64 arrays (``real`` is
``float`` or ``double``), ``KERNEL_NAMES`` the kernels in it, and ``COMPILE_OPTIONS`` the options
passed to NVRTC; ``tests/test_cuda_compile.py`` compiles that text for two GPU architectures without
a GPU. The numbers are those of the blocked NumPy form (``fused.blocked``): the moments come from
``MOMENTS_CUDA`` with ``functional.moment_weights``, Adam's weight decay is the pair (l2, decay_factor)
of ``functional.adam_weight_decay``, and the bias corrections are folded into ``eps_hat`` and one scale.

A LAMB step of one tensor is three launches and no wait for the GPU:

1. ``lamb_direction``: m, v and u = m̂/(√v̂ + eps) + weight_decay·w for every element, and each
   block's partial sums of w² and u² (in double);
2. ``lamb_trust_ratio``: one block adds up the partial sums in a fixed order (the same numbers on
   every run) and computes ‖w‖, ‖u‖, the trust ratio and the step lr·ratio, into a small ``record``;
3. ``lamb_apply``: w ← w − step·u, reading the step from ``record`` on the GPU.

The record stays on the GPU; ``fused.lamb`` copies all the records of an optimizer step to the host
with one transfer at the end of the step (the optimizer keeps ‖w‖, ‖u‖ (its ``ratio_denominator``)
and the ratio as floats).
"""

from __future__ import annotations

from typing import Any

from lamb_edu import backend
from lamb_edu.backend import xp

__all__ = ["MOMENTS_CUDA", "KERNELS_CUDA", "KERNEL_NAMES", "COMPILE_OPTIONS", "THREADS", "source", "kernels",
           "adam_step", "lamb_step", "RECORD_FIELDS"]

# ``functional.update_moments`` as one CUDA line, in the same order of operations; m_weight and
# v_weight are ``moment_weights(...)``, so grad_scale and grad_averaging are decided there, not here.
MOMENTS_CUDA = "m = beta1 * m + m_weight * g;  v = beta2 * v + g * g * v_weight;"

THREADS = 256  # threads per block: a power of two, for the tree reduction in shared memory
MAX_BLOCKS = 1024  # blocks per launch at most; each thread then loops over its share (a grid-stride loop)
COMPILE_OPTIONS = ("-std=c++14",)
RECORD_FIELDS = ("weight_norm", "ratio_denominator", "trust_ratio", "step")  # what lamb_trust_ratio writes

KERNELS_CUDA = r"""
// Each thread handles elements i, i + stride, i + 2*stride, ... (a grid-stride loop), so any
// number of blocks covers any size of array.
#define FOR_EACH_ELEMENT(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// Adam (l2 = weight_decay, decay_factor = 1) or AdamW (l2 = 0, decay_factor = 1 - lr*weight_decay): the pair
// functional.adam_weight_decay gives, so the choice between them is made there only.
// eps_hat = eps*sqrt(bc2) and step_size = lr*sqrt(bc2)/bc1 fold the bias corrections bc1 and bc2
// (functional.bias_corrections) into two numbers: m_hat/(sqrt(v_hat) + eps) = m/(sqrt(v) + eps_hat)*sqrt(bc2)/bc1.
extern "C" __global__ void adam_step(
    const real* grad, real* param, real* first_moment, real* second_moment, const long long n,
    const real beta1, const real beta2, const real m_weight, const real v_weight,
    const real eps_hat, const real step_size, const real decay_factor, const real l2)
{
    FOR_EACH_ELEMENT(i, n) {
        real w = param[i];
        real g = grad[i] + w * l2;          // Adam: the L2 term enters the gradient
        w = w * decay_factor;               // AdamW: w shrinks directly
        real m = first_moment[i], v = second_moment[i];
        MOMENTS_CUDA
        first_moment[i] = m;
        second_moment[i] = v;
        param[i] = w - m / (sqrt(v) + eps_hat) * step_size;
    }
}

// Adds `value` over the block's threads; thread 0 gets the total. Halving the active threads
// each round (a tree) takes log2(THREADS) rounds and always adds in the same order.
__device__ double block_sum(double value, double* shared)
{
    shared[threadIdx.x] = value;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads();  // shared[] may be reused by the caller
    return total;
}

// LAMB's first pass: m, v, u = direction_scale*m/(sqrt(v) + eps_hat) + weight_decay*w
// (direction_scale = sqrt(bc2)/bc1), and this block's sums of w^2 and u^2, in double, written to
// partial_sums[2*block] and partial_sums[2*block + 1].
extern "C" __global__ void lamb_direction(
    const real* grad, const real* param, real* first_moment, real* second_moment, real* update,
    double* partial_sums, const long long n,
    const real beta1, const real beta2, const real m_weight, const real v_weight,
    const real eps_hat, const real direction_scale, const real weight_decay)
{
    __shared__ double shared[THREADS];
    double weight_squares = 0.0, update_squares = 0.0;
    FOR_EACH_ELEMENT(i, n) {
        real g = grad[i], m = first_moment[i], v = second_moment[i];
        MOMENTS_CUDA
        first_moment[i] = m;
        second_moment[i] = v;
        real u = direction_scale * (m / (sqrt(v) + eps_hat)) + param[i] * weight_decay;
        update[i] = u;
        weight_squares += (double)param[i] * (double)param[i];
        update_squares += (double)u * (double)u;
    }
    weight_squares = block_sum(weight_squares, shared);
    update_squares = block_sum(update_squares, shared);
    if (threadIdx.x == 0) {
        partial_sums[2 * blockIdx.x] = weight_squares;
        partial_sums[2 * blockIdx.x + 1] = update_squares;
    }
}

// One block: the norms from the partial sums and the trust ratio of functional.trust_ratio,
// phi(||w||)/||u|| with phi clipping ||w|| to [0, clamp_value] (clamp_value < 0: no clamp), 1 when
// a norm is 0, at most 1 with trust_clip. record = {||w||, ||u||, trust_ratio, lr*ratio used}.
extern "C" __global__ void lamb_trust_ratio(
    const double* partial_sums, const int blocks, double* record,
    const double lr, const double clamp_value, const int trust_clip, const int use_trust_ratio)
{
    __shared__ double shared[THREADS];
    double weight_squares = 0.0, update_squares = 0.0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
        weight_squares += partial_sums[2 * b];
        update_squares += partial_sums[2 * b + 1];
    }
    weight_squares = block_sum(weight_squares, shared);
    update_squares = block_sum(update_squares, shared);
    if (threadIdx.x == 0) {
        double weight_norm = sqrt(weight_squares), update_norm = sqrt(update_squares);
        double ratio = 1.0;
        if (weight_norm > 0.0 && update_norm > 0.0) {
            double clipped = clamp_value >= 0.0 ? fmin(weight_norm, clamp_value) : weight_norm;
            ratio = clipped / update_norm;
            if (trust_clip) ratio = fmin(ratio, 1.0);
        }
        record[0] = weight_norm;
        record[1] = update_norm;
        record[2] = ratio;
        record[3] = lr * (use_trust_ratio ? ratio : 1.0);
    }
}

// LAMB's second pass: w <- w - (lr*trust_ratio)*u, the step read from the record on the GPU.
extern "C" __global__ void lamb_apply(
    const real* update, const double* record, real* param, const long long n)
{
    const real step = (real)record[3];
    FOR_EACH_ELEMENT(i, n) {
        param[i] = param[i] - step * update[i];
    }
}
"""

KERNEL_NAMES = ("adam_step", "lamb_direction", "lamb_trust_ratio", "lamb_apply")
_C_TYPES = {"float32": "float", "float64": "double"}


def source(dtype: Any) -> str:
    """The exact CUDA source compiled for arrays of ``dtype`` (float32 or float64)."""
    name = backend.np.dtype(dtype).name
    if name not in _C_TYPES:
        raise ValueError(f"the CUDA kernels take float32 or float64 arrays, got {name}")
    header = f"typedef {_C_TYPES[name]} real;\n#define THREADS {THREADS}\n#define MOMENTS_CUDA {MOMENTS_CUDA}\n"
    return header + KERNELS_CUDA


_modules: dict[str, dict[str, Any]] = {}


def kernels(dtype: Any) -> dict[str, Any]:
    """The compiled kernels for ``dtype``, by name (compiled once, on first use; CuPy backend only)."""
    name = backend.np.dtype(dtype).name
    if name not in _modules:
        module = xp.RawModule(code=source(name), options=COMPILE_OPTIONS)
        _modules[name] = {kernel: module.get_function(kernel) for kernel in KERNEL_NAMES}
    return _modules[name]


def _grid(size: int) -> int:
    return max(1, min(MAX_BLOCKS, -(-size // THREADS)))


def adam_step(param: Any, grad: Any, m: Any, v: Any, scalars: dict[str, float]) -> None:
    """Launch ``adam_step`` on contiguous device arrays; ``scalars`` are the kernel's named numbers."""
    real = param.dtype.type
    names = ("beta1", "beta2", "m_weight", "v_weight", "eps_hat", "step_size", "decay_factor", "l2")
    kernels(param.dtype)["adam_step"]((_grid(param.size),), (THREADS,), (
        grad, param, m, v, backend.np.int64(param.size), *(real(scalars[key]) for key in names)))


def lamb_step(param: Any, grad: Any, m: Any, v: Any, scalars: dict[str, float], options: dict[str, Any],
              record: Any = None) -> tuple[float, float, float] | None:
    """Launch LAMB's three kernels on contiguous device arrays; the norms and ratio land in ``record``.

    ``record`` is a float64 device array of 4 (``RECORD_FIELDS``): then nothing here waits for the
    GPU and None is returned. Without it one is made, read back (a wait) and its first three
    numbers returned as floats: (weight_norm, ratio_denominator = ‖u‖, trust_ratio).
    """
    np, real, blocks, size = backend.np, param.dtype.type, _grid(param.size), backend.np.int64(param.size)
    update, partial_sums = _buffer(param.dtype, param.size), _buffer(np.float64, 2 * MAX_BLOCKS)
    own = record is None
    if own:
        record = xp.empty(len(RECORD_FIELDS), dtype=np.float64)
    names = ("beta1", "beta2", "m_weight", "v_weight", "eps_hat", "direction_scale", "weight_decay")
    compiled = kernels(param.dtype)
    compiled["lamb_direction"]((blocks,), (THREADS,), (
        grad, param, m, v, update, partial_sums, size, *(real(scalars[key]) for key in names)))
    clamp_value = options["clamp_value"]
    compiled["lamb_trust_ratio"]((1,), (THREADS,), (
        partial_sums, np.int32(blocks), record, np.float64(options["lr"]),
        np.float64(-1.0 if clamp_value is None else clamp_value), np.int32(bool(options["trust_clip"])),
        np.int32(bool(options["use_trust_ratio"]))))
    compiled["lamb_apply"]((blocks,), (THREADS,), (update, record, param, size))
    if not own:
        return None
    weight_norm, update_norm, ratio = (float(x) for x in backend.to_numpy(record)[:3])  # waits for the GPU
    return weight_norm, update_norm, ratio


_buffers: dict[str, Any] = {}


def _buffer(dtype: Any, size: int) -> Any:
    """A reusable device array of at least ``size`` elements of ``dtype`` (kernels run in launch order,
    so one tensor's kernels have finished with it before the next tensor's start)."""
    key = backend.np.dtype(dtype).name
    if key not in _buffers or _buffers[key].size < size:
        _buffers[key] = xp.empty(size, dtype=dtype)
    return _buffers[key][:size]
