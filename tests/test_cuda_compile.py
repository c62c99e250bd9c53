"""Every CUDA kernel the library can launch compiles, for two GPU generations, without a GPU.

NVRTC (CUDA's runtime compiler, the ``nvidia-cuda-nvrtc-cu12`` wheel) turns the exact source of
``optim.fused.cuda.source(dtype)`` into PTX with the options CuPy's ``RawModule`` would use; a
kernel that does not compile fails here with NVRTC's log. Skipped, with the reason, where CuPy or the
NVRTC wheel is missing (``pip install -e .[gpu-check]`` installs both).
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
from pathlib import Path

import pytest

from lamb_edu.optim.fused import cuda

# the oldest generation the installed NVRTC still targets (Volta, compute_70, up to CUDA 12; Turing from
# CUDA 13) and Hopper (H100)
ARCHITECTURES = ("oldest", "compute_90")
CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")  # what CuPy adds to a RawModule's options


def _load_nvrtc():
    """``cupy_backends``' NVRTC binding, with the wheel's libnvrtc loaded first; skip if either is missing."""
    if importlib.util.find_spec("cupy_backends") is None:
        pytest.skip("CuPy is not installed (pip install -e .[gpu-check])")
    spec = importlib.util.find_spec("nvidia.cuda_nvrtc") if importlib.util.find_spec("nvidia") else None
    if spec is not None:  # preload it so that CuPy finds it even where it would not search the wheel
        for library in sorted(Path(list(spec.submodule_search_locations)[0], "lib").glob("libnvrtc.so*")):
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    from cupy_backends.cuda.libs import nvrtc  # only importable where CuPy is

    try:
        nvrtc.getVersion()
    except Exception as error:  # no libnvrtc anywhere
        pytest.skip(f"NVRTC is not available ({error}; pip install nvidia-cuda-nvrtc-cu12)")
    return nvrtc


def oldest_architecture() -> str:
    """``compute_NN`` for the oldest architecture from Volta on that this NVRTC compiles for."""
    nvrtc = _load_nvrtc()
    try:
        supported = nvrtc.getSupportedArchs()
    except Exception:  # an NVRTC older than CUDA 11.2 cannot say: it still compiles for Volta
        return "compute_70"
    return f"compute_{min(arch for arch in supported if arch >= 70)}"


def compile_to_ptx(code: str, architecture: str) -> str:
    """PTX of ``code`` for ``architecture``, or an AssertionError carrying NVRTC's log."""
    nvrtc = _load_nvrtc()
    if architecture == "oldest":
        architecture = oldest_architecture()
    program = nvrtc.createProgram(code, "lamb_edu_kernels.cu", [], [])
    options = [*cuda.COMPILE_OPTIONS, *CUPY_OPTIONS, f"-arch={architecture}"]
    try:
        nvrtc.compileProgram(program, options)
    except nvrtc.NVRTCError as error:
        raise AssertionError(f"NVRTC ({architecture}) failed: {error}\n{nvrtc.getProgramLog(program)}") from None
    ptx = nvrtc.getPTX(program)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kernel_compiles(dtype, architecture):
    architecture = oldest_architecture() if architecture == "oldest" else architecture
    ptx = compile_to_ptx(cuda.source(dtype), architecture)
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert entries == set(cuda.KERNEL_NAMES)  # every launched kernel, under its plain C name
    assert f".target sm_{architecture.split('_')[1]}" in ptx
    # the dtype reached the arithmetic: float32 kernels work on .f32 registers, float64 ones on .f64
    assert (".f32" in ptx.split(".entry adam_step")[1].split(".entry")[0]) == (dtype == "float32")


def test_a_broken_kernel_fails_with_the_compilers_log():
    broken = cuda.source("float32").replace("param[i] = w - m", "param[i] = w - undefined_m", 1)
    assert broken != cuda.source("float32")
    oldest = oldest_architecture()
    with pytest.raises(AssertionError, match=rf'(?s){oldest}.*identifier "undefined_m" is undefined'):
        compile_to_ptx(broken, oldest)


def test_source_is_the_module_text_with_its_dtype():
    for dtype, c_type in (("float32", "float"), ("float64", "double")):
        text = cuda.source(dtype)
        assert text.startswith(f"typedef {c_type} real;") and text.endswith(cuda.KERNELS_CUDA)
        assert cuda.MOMENTS_CUDA in text
    with pytest.raises(ValueError, match="float16"):
        cuda.source("float16")
