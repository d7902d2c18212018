"""Random tensors, reproducible with a seed on each backend.

``seed(n)`` resets one generator per backend; an op-level ``seed=`` draws from a generator of
its own, so the same call with the same seed gives the same numbers every time. The CPU draws with
NumPy's ``RandomState``; CUDA devices with a counter-based generator (:mod:`gpugrad.philox`), so
that compiled steps captured as CUDA graphs draw afresh at every launch.
"""

from __future__ import annotations

import numpy as np

from . import backend, philox
from .philox import Philox
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
    return Philox(s)  # counter-based: a compiled step captured as a CUDA graph draws afresh each launch


def _sample(dev, op_seed, method, args, shape, dt):
    """One draw on the CPU from the generator that ``seed``/``op_seed`` select *now*: a compiled
    step records this call, so each replay draws as eager code would (a fixed ``seed=`` gives the
    same numbers every call; ``gg.random.seed`` between calls restarts the sequence)."""
    g = _generator(dev, op_seed)
    return getattr(g, method)(*args, size=shape).astype(dt, copy=False)


def _draw(method, shape, dtype, device, seed, *args):
    dev = backend.normalize_device(device)
    dt = DEFAULT_FLOAT if dtype is None else np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if dev == "cpu":
        return Tensor._make(backend.host_array(_sample, dev, seed, method, args, shape, dt))

    def take(n):  # the generator that seed()/seed= select when the draw runs (also at each replay)
        return _generator(dev, seed).take(n)

    if method == "randint":  # uniform in [low, high), rounded down (32 random bits)
        u = philox.draw(take, dev, shape, np.float64, philox.UNIFORM, *args)
        return Tensor._make(backend.get_array_module(u).floor(u).astype(dt))
    dist = philox.NORMAL if method == "normal" else philox.UNIFORM
    return Tensor._make(philox.draw(take, dev, shape, dt, dist, *args))


def uniform_array(take, dev: str, shape, dtype):
    """Uniforms in [0, 1) on ``dev`` from the generator ``take`` looks up (Dropout's masks)."""
    return philox.draw(take, dev, tuple(shape), dtype, philox.UNIFORM, 0.0, 1.0)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None, device=None, requires_grad: bool = False) -> Tensor:
    t = _draw("normal", shape, dtype, device, seed, mean, stddev)
    return t.requires_grad_(True) if requires_grad else t


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None, device=None, requires_grad: bool = False) -> Tensor:
    t = _draw("uniform", shape, dtype, device, seed, minval, maxval)
    return t.requires_grad_(True) if requires_grad else t


def randint(shape, low, high, dtype="int64", seed=None, device=None) -> Tensor:
    return _draw("randint", shape, dtype, device, seed, low, high)
