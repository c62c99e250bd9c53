"""Shared test set-up: the backend under test, float64 helpers and the MNIST location."""

from __future__ import annotations

import importlib.util
import os
import warnings

import matplotlib

matplotlib.use("Agg")


def _cupy_usable() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


# LAMB_EDU_BACKEND=cupy runs the whole suite on the GPU; without CuPy or a GPU it runs on NumPy.
if os.environ.get("LAMB_EDU_BACKEND", "numpy").lower() == "cupy" and not _cupy_usable():
    warnings.warn("LAMB_EDU_BACKEND=cupy but CuPy or a GPU is missing: the tests run on NumPy")
    os.environ["LAMB_EDU_BACKEND"] = "numpy"
