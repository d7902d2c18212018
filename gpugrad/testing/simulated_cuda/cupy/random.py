"""Simulated ``cupy.random``: NumPy's generators, with CuPy's dtype rules (floats of float32 or
float64 only, integers through ``cupy.iinfo`` of the dtype asked for). Each draw is one kernel launch."""

from __future__ import annotations

import numpy as np

from .. import _device as _D
from .._array import new_result as _new_result

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise TypeError(f"cupy.random only supports float32 and float64, not {dt.name}")
    return dt


def _shape(size) -> tuple[int, ...]:
    if size is None:
        return ()
    return (int(size),) if np.isscalar(size) else tuple(int(s) for s in size)


class RandomState:
    """``RandomState(seed=None)``: reproducible for a seed (not CuPy's numbers, CuPy's dtypes)."""

    def __init__(self, seed=None, method=None) -> None:
        self._rs = np.random.RandomState(None if seed is None else int(seed) % 2**32)

    def seed(self, seed=None) -> None:
        self._rs = np.random.RandomState(None if seed is None else int(seed) % 2**32)

    def _out(self, name: str, values: np.ndarray, dtype) -> object:
        return _new_result(f"cupy_random_{name}", values.astype(dtype, copy=False), _D.state.device, 0)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        dt = _float_dtype(dtype)
        return self._out("normal", np.asarray(self._rs.normal(_host(loc), _host(scale), _shape(size))), dt)

    def standard_normal(self, size=None, dtype=float):
        return self.normal(0.0, 1.0, size, dtype)

    def randn(self, *size, **kwarg):
        return self.normal(0.0, 1.0, size, kwarg.get("dtype", float))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        dt = _float_dtype(dtype)
        return self._out("uniform", np.asarray(self._rs.uniform(_host(low), _host(high), _shape(size))), dt)

    def random_sample(self, size=None, dtype=float):
        return self.uniform(0.0, 1.0, size, dtype)

    def rand(self, *size, **kwarg):
        return self.uniform(0.0, 1.0, size, kwarg.get("dtype", float))

    def randint(self, low, high=None, size=None, dtype="l"):
        info = np.iinfo(dtype)  # as cupy.iinfo: a dtype that is not an integer type raises ValueError
        if high is None:
            low, high = 0, low
        if low < info.min or high - 1 > info.max:
            raise ValueError(f"low and high must be within the range of {np.dtype(dtype).name}")
        vals = self._rs.randint(low, high, _shape(size), dtype=np.int64)
        return self._out("randint", np.asarray(vals), np.dtype(dtype))

    def permutation(self, a):
        if not np.isscalar(a):
            raise TypeError("permutation takes an int on the simulated device")
        return self._out("permutation", self._rs.permutation(int(a)), np.int64)

    def choice(self, a, size=None, replace=True, p=None):
        if not np.isscalar(a):
            raise TypeError("choice takes an int on the simulated device")
        return self._out("choice", np.asarray(self._rs.choice(int(a), _shape(size), replace, p)), np.int64)


def _host(v):
    if hasattr(v, "get") and not isinstance(v, np.ndarray):
        return v.get()
    return v


_global: list[RandomState] = []


def get_random_state() -> RandomState:
    if not _global:
        _global.append(RandomState())
    return _global[0]


def seed(seed=None) -> None:
    get_random_state().seed(seed)


def normal(loc=0.0, scale=1.0, size=None, dtype=float):
    return get_random_state().normal(loc, scale, size, dtype)


def uniform(low=0.0, high=1.0, size=None, dtype=float):
    return get_random_state().uniform(low, high, size, dtype)


def randint(low, high=None, size=None, dtype="l"):
    return get_random_state().randint(low, high, size, dtype)


def rand(*size, **kwarg):
    return get_random_state().rand(*size, **kwarg)


def randn(*size, **kwarg):
    return get_random_state().randn(*size, **kwarg)


def random_sample(size=None, dtype=float):
    return get_random_state().random_sample(size, dtype)


def permutation(a):
    return get_random_state().permutation(a)
