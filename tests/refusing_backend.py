"""A stand-in GPU backend for the tests: arrays that refuse to become NumPy arrays, and count every wait.

``FakeCupy`` plays CuPy's part (``backend._active``), so the library takes its GPU branches on a
machine without one. Its ``DeviceArray`` holds a host array but, like a CuPy array, raises TypeError
when NumPy is handed it (``np.asarray``, a NumPy function, an operation with a host array) and
counts each explicit wait for the device (``get``, ``item``, ``float``, ``int``, ``bool``) in
``WAITS``, with the line of library code that asked. Its ``RawModule`` runs the kernels of
``optim.cuda_kernels`` as NumPy emulations written here from the CUDA source, after checking that
every argument has the type the kernel declares.
"""

from __future__ import annotations

import operator
import re
import traceback
import types
from typing import Any

import numpy as np

WAITS: list[str] = []  # "where: how" for every wait for the device


def _record_wait(how: str) -> None:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/lamb_edu/" in frame.filename and not frame.filename.endswith("/lamb_edu/backend.py"):  # to_numpy's caller
            WAITS.append(f"{frame.filename.split('/lamb_edu/')[1]}:{frame.name}: {how}")
            return
    WAITS.append(f"(outside lamb_edu): {how}")


def _unwrap(value: Any, host_ok: bool = False) -> Any:
    if isinstance(value, DeviceArray):
        return value._host
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item, host_ok) for item in value)
    if isinstance(value, np.ndarray) and value.ndim > 0 and not host_ok:
        raise TypeError(f"a host numpy array {value.shape} given to a device operation (move it with asarray)")
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    return value


class DeviceArray:
    """An array 'on the device': NumPy cannot read it; only waits (counted) bring values back."""

    __array_ufunc__ = None  # NumPy ufuncs on it raise TypeError, as on a CuPy array

    def __init__(self, host: np.ndarray) -> None:
        self._host = host

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("implicit conversion of a device array to a NumPy array (use backend.to_numpy)")

    def __array_function__(self, function: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{function.__name__} called on a device array")

    # the waits for the device
    def get(self) -> np.ndarray:
        _record_wait("get")
        return self._host.copy()

    def item(self) -> Any:
        _record_wait("item")
        return self._host.item()

    def tolist(self) -> Any:
        _record_wait("tolist")
        return self._host.tolist()

    def __float__(self) -> float:
        _record_wait("float")
        return float(self._host)

    def __int__(self) -> int:
        _record_wait("int")
        return int(self._host)

    def __bool__(self) -> bool:
        _record_wait("bool")
        return bool(self._host)

    # what stays on the device
    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    ndim = property(lambda self: self._host.ndim)
    flags = property(lambda self: self._host.flags)
    nbytes = property(lambda self: self._host.nbytes)
    T = property(lambda self: DeviceArray(self._host.T))

    def __len__(self) -> int:
        return len(self._host)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._host[_unwrap(key, host_ok=True)])  # CuPy takes host index arrays

    def __setitem__(self, key: Any, value: Any) -> None:
        self._host[_unwrap(key, host_ok=True)] = _unwrap(value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # __array_interface__ and the like would hand NumPy the data
            raise AttributeError(name)
        attribute = getattr(self._host, name)
        if callable(attribute):
            return lambda *args, **kwargs: _wrap(attribute(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))
        return _wrap(attribute)


def _binary(name: str) -> Any:
    function = getattr(operator, name)

    def method(self: DeviceArray, other: Any) -> Any:
        result = function(self._host, _unwrap(other))
        return self if name.startswith("i") and name not in ("invert",) else _wrap(result)

    return method


def _reflected(name: str) -> Any:
    function = getattr(operator, name)
    return lambda self, other: _wrap(function(_unwrap(other), self._host))


for _name in ("add", "sub", "mul", "truediv", "floordiv", "pow", "matmul", "mod",
              "lt", "le", "gt", "ge", "eq", "ne", "and_", "or_"):
    setattr(DeviceArray, f"__{_name.rstrip('_')}__", _binary(_name))
for _name in ("add", "sub", "mul", "truediv", "pow", "matmul"):
    setattr(DeviceArray, f"__r{_name}__", _reflected(_name))
    setattr(DeviceArray, f"__i{_name}__", _binary(f"i{_name}"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__", lambda self, _f=getattr(operator, _name): _wrap(_f(self._host)))
DeviceArray.__hash__ = object.__hash__


# ------------------------------------------------------------------------------ the kernels, in NumPy
def _emulate(name: str, real: Any, blocks: int, args: tuple) -> None:
    """What the CUDA kernel ``name`` computes, from its source in optim.cuda_kernels."""
    from lamb_edu.optim.cuda_kernels import THREADS  # noqa: PLC0415

    if name == "adam_step":
        grad, param, m, v, n, beta1, beta2, m_weight, v_weight, eps_hat, step_size, decay_factor, l2 = args
        g = grad + param * l2
        w = param * decay_factor
        m[:] = beta1 * m + m_weight * g
        v[:] = beta2 * v + g * g * v_weight
        param[:] = w - m / (np.sqrt(v) + eps_hat) * step_size
    elif name == "lamb_direction":
        grad, param, m, v, update, partial_sums, n, beta1, beta2, m_weight, v_weight, eps_hat, scale, decay = args
        m[:] = beta1 * m + m_weight * grad
        v[:] = beta2 * v + grad * grad * v_weight
        update[:n] = scale * (m / (np.sqrt(v) + eps_hat)) + param * decay
        block_of = (np.arange(n) % (blocks * THREADS)) // THREADS  # the grid-stride loop's share of each block
        squares = (param.astype(np.float64) ** 2, update[:n].astype(np.float64) ** 2)
        partial_sums[0:2 * blocks:2] = np.bincount(block_of, squares[0], minlength=blocks)
        partial_sums[1:2 * blocks:2] = np.bincount(block_of, squares[1], minlength=blocks)
    elif name == "lamb_trust_ratio":
        partial_sums, count, record, lr, clamp_value, trust_clip, use_trust_ratio = args
        weight_norm, update_norm = np.sqrt(partial_sums[:2 * count].reshape(count, 2).sum(axis=0))
        ratio = 1.0
        if weight_norm > 0 and update_norm > 0:
            ratio = (min(weight_norm, clamp_value) if clamp_value >= 0 else weight_norm) / update_norm
            ratio = min(ratio, 1.0) if trust_clip else ratio
        record[:] = (weight_norm, update_norm, ratio, lr * (ratio if use_trust_ratio else 1.0))
    elif name == "lamb_apply":
        update, record, param, n = args
        param[:] = param - real(record[3]) * update[:n]


def _check_arguments(source: str, name: str, real: Any, args: tuple) -> None:
    """Each argument has the type the kernel's signature declares (pointers: contiguous device arrays)."""
    signature = re.search(rf'extern "C" __global__ void {name}\((.*?)\)', source, re.S).group(1)
    declared = [re.sub(r"\s+\w+$", "", part.strip()).replace("const ", "") for part in signature.split(",")]
    assert len(declared) == len(args), f"{name}: {len(args)} arguments for {len(declared)} parameters"
    scalars = {"real": real, "long long": np.int64, "int": np.int32, "double": np.float64}
    for position, (kind, value) in enumerate(zip(declared, args)):
        if kind.endswith("*"):
            element = real if kind[:-1].strip() == "real" else scalars[kind[:-1].strip()]
            assert isinstance(value, DeviceArray) and value.flags.c_contiguous, f"{name} argument {position}"
            assert value.dtype == element, f"{name} argument {position}: {value.dtype}, not {element}"
        else:
            assert type(value) is scalars[kind], f"{name} argument {position}: {type(value)}, not {kind}"


class RawModule:
    """Keeps the source it is given; its functions check their arguments and run the NumPy emulation."""

    compiled: list[str] = []  # every source given, for the tests to compare

    def __init__(self, code: str, options: tuple = ()) -> None:
        self.code = code
        self.real = np.float32 if code.startswith("typedef float real;") else np.float64
        RawModule.compiled.append(code)

    def get_function(self, name: str) -> Any:
        from lamb_edu.optim.cuda_kernels import MAX_BLOCKS, THREADS  # noqa: PLC0415

        def launch(grid: tuple, block: tuple, args: tuple) -> None:
            assert block == (THREADS,) and 1 <= grid[0] <= MAX_BLOCKS
            _check_arguments(self.code, name, self.real, args)
            pointers = (arg._host.reshape(-1) if isinstance(arg, DeviceArray) else arg for arg in args)  # flat views
            _emulate(name, self.real, grid[0], tuple(pointers))

        assert f"void {name}(" in self.code
        return launch


class FakeCupy(types.ModuleType):
    """The array module: NumPy's functions on device arrays; host arrays enter only through asarray."""

    RawModule = RawModule

    def __init__(self) -> None:
        super().__init__("cupy")
        self.cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(synchronize=lambda: None))

    def asarray(self, array: Any, dtype: Any = None) -> DeviceArray:
        if isinstance(array, DeviceArray) and (dtype is None or np.dtype(dtype) == array.dtype):
            return array
        return DeviceArray(np.array(_unwrap(array, host_ok=True), dtype=dtype))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(np, name)
        if isinstance(attribute, np.ufunc):
            return _DeviceUfunc(attribute)
        if not callable(attribute) or isinstance(attribute, type):
            return attribute
        return lambda *args, **kwargs: _wrap(attribute(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))


class _DeviceUfunc:
    """A NumPy ufunc on device arrays, with ``at`` (CuPy has ``cupy.add.at`` too): host arrays refused."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self._ufunc(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    def at(self, array: Any, indices: Any, values: Any = None) -> None:
        assert isinstance(array, DeviceArray), "ufunc.at on a host array"
        self._ufunc.at(array._host, _unwrap(indices), _unwrap(values))
