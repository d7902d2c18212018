"""Random tensors, reproducible with a seed on each backend.

``seed(n)`` resets one generator per backend; an op-level ``seed=`` draws from a generator of
its own, so the same call with the same seed gives the same numbers every time.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .tensor import DEFAULT_FLOAT, Tensor

_global_seed: int | None = None
_generators: dict = {}


def seed(n: int) -> None:
    """Seed the global generators of every backend."""
    global _global_seed
    _global_seed = int(n)
    _generators.clear()


set_seed = seed


def _generator(dev: str, op_seed):
    if op_seed is not None:
        return _new(dev, int(op_seed))
    g = _generators.get(dev)
    if g is None:
        g = _generators[dev] = _new(dev, _global_seed)
    return g


def _new(dev, s):
    if dev == "cpu":
        return np.random.RandomState(s)
    cp = backend.cupy()
    with cp.cuda.Device(int(dev.split(":")[1])):
        return cp.random.RandomState(s)


def _sample(dev, op_seed, method, args, shape, dt):
    """One draw from the generator that ``seed``/``op_seed`` select *now*: a compiled step records
    this call, so each replay draws as eager code would (a fixed ``seed=`` gives the same numbers
    every call; ``gg.random.seed`` between calls restarts the sequence)."""
    g = _generator(dev, op_seed)
    if dev == "cpu":
        return getattr(g, method)(*args, size=shape).astype(dt, copy=False)
    with backend.cupy().cuda.Device(int(dev.split(":")[1])):
        return getattr(g, method)(*args, size=shape, dtype=_cupy_draw_dtype(method, dt)).astype(dt, copy=False)


def _draw(method, shape, dtype, device, seed, *args):
    dev = backend.normalize_device(device)
    dt = DEFAULT_FLOAT if dtype is None else np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor._make(backend.host_array(_sample, dev, seed, method, args, shape, dt))


def _cupy_draw_dtype(method: str, dt: np.dtype) -> np.dtype:
    """The dtype CuPy draws in for ``dt``: its float draws take float32 or float64 only, and
    ``randint`` an integer dtype (the result is then cast to ``dt``, as on the CPU)."""
    if method == "randint":
        return dt if dt.kind in "iu" else np.dtype(np.int64)
    return dt if dt.char in "fd" else np.dtype(np.float32 if dt.itemsize <= 4 else np.float64)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None, device=None, requires_grad: bool = False) -> Tensor:
    t = _draw("normal", shape, dtype, device, seed, mean, stddev)
    return t.requires_grad_(True) if requires_grad else t


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None, device=None, requires_grad: bool = False) -> Tensor:
    t = _draw("uniform", shape, dtype, device, seed, minval, maxval)
    return t.requires_grad_(True) if requires_grad else t


def randint(shape, low, high, dtype="int64", seed=None, device=None) -> Tensor:
    return _draw("randint", shape, dtype, device, seed, low, high)
