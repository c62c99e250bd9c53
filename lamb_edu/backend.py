"""The one place that decides where arrays live: NumPy on the CPU, or CuPy on an NVIDIA GPU.

Every other module does ``from lamb_edu.backend import xp`` and writes ``xp.zeros(...)``,
``xp.sqrt(..., out=...)`` and so on, never importing numpy or cupy for array maths itself. ``xp``
is a thin stand-in that forwards to whichever module is active, so ``use("cupy")`` takes effect
everywhere at once.

The backend is chosen by ``LAMB_EDU_BACKEND`` (``numpy``, the default, or ``cupy``) when the
package is imported, or later by ``use(name)``. A value that cannot be used (a misspelling, or
``cupy`` without CuPy or a GPU) does not break the import: ``environment_problem()`` says what is
wrong, and the first use of an array (``xp.…``, ``asarray``, ``name()``) raises
``BackendUnavailableError`` with that message until ``use(...)`` picks a backend. Nothing falls back
to NumPy silently. Random numbers are always drawn on the host from a
seeded ``numpy.random.Generator`` and then moved to the device, so a seeded run starts from the same
weights on both backends.
"""

from __future__ import annotations

import os
import types
from typing import Any

import numpy as np

__all__ = [
    "BackendUnavailableError",
    "environment_problem",
    "xp",
    "np",
    "use",
    "name",
    "is_gpu",
    "to_numpy",
    "synchronize",
    "asarray",
    "default_dtype",
    "set_default_dtype",
    "seed",
    "generator",
]

INSTALL_HINT = (
    "The CuPy backend needs CuPy and an NVIDIA GPU. Install CuPy with "
    "`pip install cupy-cuda12x` (or `cupy-cuda11x` for CUDA 11), or use the NumPy backend "
    "(unset LAMB_EDU_BACKEND or set it to 'numpy')."
)


class BackendUnavailableError(RuntimeError):
    """Raised when the requested array backend cannot be used on this machine."""


class _ActiveArrayModule:
    """Forwards attribute access to the active array module (numpy or cupy)."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(_active, attribute)

    def __repr__(self) -> str:
        return f"<lamb_edu array module: {_active.__name__}>"


class _Unusable:
    """Stands in for the array module while ``LAMB_EDU_BACKEND`` names one that cannot be used."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __getattr__(self, attribute: str) -> Any:
        raise BackendUnavailableError(self.problem)


xp = _ActiveArrayModule()
_active: Any = np
_default_dtype = np.dtype(np.float32)
_generator = np.random.default_rng(0)


def _load_cupy() -> types.ModuleType:
    try:
        import cupy  # noqa: PLC0415  (optional dependency, imported only on request)
    except Exception as error:  # ImportError, or a broken CUDA install raising anything
        raise BackendUnavailableError(f"CuPy is not installed ({error}). {INSTALL_HINT}") from None
    try:
        device_count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        raise BackendUnavailableError(f"CuPy found no usable GPU ({error}). {INSTALL_HINT}") from None
    if device_count < 1:
        raise BackendUnavailableError(f"CuPy found no GPU. {INSTALL_HINT}")
    return cupy


def use(backend_name: str) -> types.ModuleType:
    """Make ``backend_name`` ('numpy' or 'cupy') the active array module and return it.

    Raises ``ValueError`` for an unknown name and ``BackendUnavailableError`` (with the install
    command) when CuPy or a GPU is missing; the active backend is unchanged in both cases.
    """
    global _active
    requested = str(backend_name).strip().lower()
    if requested == "numpy":
        _active = np
    elif requested == "cupy":
        _active = _load_cupy()
    else:
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {backend_name!r}")
    return _active


def environment_problem() -> str | None:
    """Why ``LAMB_EDU_BACKEND`` could not be used (until ``use()`` chooses a backend), or None."""
    return _active.problem if isinstance(_active, _Unusable) else None


def name() -> str:
    """The name of the active backend: 'numpy' or 'cupy'."""
    return _active.__name__


def is_gpu() -> bool:
    """True when arrays live on a GPU (the CuPy backend)."""
    return name() != "numpy"


def to_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a NumPy array on the host (copying from the GPU if needed)."""
    if hasattr(array, "get") and not isinstance(array, np.ndarray):
        return array.get()
    return np.asarray(array)


def synchronize() -> None:
    """Wait until the GPU has finished its queued work (nothing to wait for on NumPy); for timing."""
    if is_gpu():
        _active.cuda.Device().synchronize()


def asarray(array: Any, dtype: Any = None) -> Any:
    """Move ``array`` (NumPy, CuPy, list or scalar) to the active backend, optionally casting."""
    return _active.asarray(array, dtype=dtype)


def default_dtype() -> np.dtype:
    """The dtype of new parameters and of data given as Python numbers: float32 unless changed."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the default floating dtype ('float32' or 'float64'); float64 is for gradient checks."""
    global _default_dtype
    chosen = np.dtype(dtype)
    if chosen not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype!r}")
    _default_dtype = chosen


def seed(value: int) -> None:
    """Reseed the library-wide generator used when no ``seed=`` is given."""
    global _generator
    _generator = np.random.default_rng(value)


def generator(seed_value: int | None = None) -> np.random.Generator:
    """A host random generator: a fresh one seeded with ``seed_value``, or the library-wide one."""
    if seed_value is None:
        return _generator
    return np.random.default_rng(seed_value)


def _use_environment() -> None:
    """Take ``LAMB_EDU_BACKEND`` at import; if it cannot be used, keep why (see ``environment_problem``)."""
    global _active
    requested = os.environ.get("LAMB_EDU_BACKEND", "numpy") or "numpy"
    try:
        use(requested)
    except BackendUnavailableError as error:  # its message says how to install CuPy or use NumPy
        _active = _Unusable(f"LAMB_EDU_BACKEND={requested!r} cannot be used: {error}")
    except ValueError as error:
        _active = _Unusable(f"LAMB_EDU_BACKEND={requested!r} cannot be used: {error}. Set it to numpy or cupy.")


_use_environment()
