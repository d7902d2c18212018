"""Weight initializers, Keras' rules: ``'zeros'``, ``'ones'``, ``'glorot_uniform'``,
``'glorot_normal'``, ``'he_normal'``, ``'he_uniform'``.

Each is a callable ``fn(shape, dtype=None, device=None, seed=None) -> Tensor``; any callable with
the signature ``fn(shape, dtype, device)`` returning a Tensor or an array can be used instead.
Random ones draw from :mod:`gpugrad.random`, so ``gg.random.seed(n)`` makes them reproducible.
"""

from __future__ import annotations

import math

from .. import random as _random
from ..ops.creation import ones as _ones
from ..ops.creation import zeros as _zeros
from ..tensor import Tensor

# stddev of a unit normal truncated to [-2, 2]: Keras divides by it so the variance is as asked
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[float, float]:
    """(fan_in, fan_out) as Keras computes them: dense (in, out); conv (..., in, out) × receptive field."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def zeros(shape, dtype=None, device=None, seed=None) -> Tensor:
    return _zeros(tuple(shape), dtype=dtype, device=device)


def ones(shape, dtype=None, device=None, seed=None) -> Tensor:
    return _ones(tuple(shape), dtype=dtype, device=device)


def glorot_uniform(shape, dtype=None, device=None, seed=None) -> Tensor:
    """U(−l, l) with l = √(6 / (fan_in + fan_out))."""
    fan_in, fan_out = compute_fans(shape)
    limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
    return _random.uniform(tuple(shape), -limit, limit, dtype=dtype, seed=seed, device=device)


def glorot_normal(shape, dtype=None, device=None, seed=None) -> Tensor:
    """Truncated normal with stddev √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = compute_fans(shape)
    return truncated_normal(shape, math.sqrt(2.0 / max(1.0, fan_in + fan_out)), dtype, device, seed)


def he_normal(shape, dtype=None, device=None, seed=None) -> Tensor:
    """Truncated normal with stddev √(2 / fan_in)."""
    fan_in, _ = compute_fans(shape)
    return truncated_normal(shape, math.sqrt(2.0 / max(1.0, fan_in)), dtype, device, seed)


def he_uniform(shape, dtype=None, device=None, seed=None) -> Tensor:
    """U(−l, l) with l = √(6 / fan_in)."""
    fan_in, _ = compute_fans(shape)
    limit = math.sqrt(6.0 / max(1.0, fan_in))
    return _random.uniform(tuple(shape), -limit, limit, dtype=dtype, seed=seed, device=device)


def truncated_normal(shape, stddev, dtype=None, device=None, seed=None) -> Tensor:
    """A normal of standard deviation ``stddev`` after truncation to two standard deviations
    (values outside are drawn again), as Keras' variance-scaling initializers use."""
    shape = tuple(shape)
    scale = stddev / _TRUNC_STD
    a = _random.normal(shape, 0.0, 1.0, dtype=dtype, seed=seed, device=device).data
    bad = abs(a) > 2.0
    redraw = 0
    while bool(bad.any()):
        redraw += 1
        s = None if seed is None else seed + redraw
        fresh = _random.normal(shape, 0.0, 1.0, dtype=dtype, seed=s, device=device).data
        a[bad] = fresh[bad]
        bad = abs(a) > 2.0
    return Tensor._make(a * a.dtype.type(scale))


INITIALIZERS = {
    "zeros": zeros,
    "ones": ones,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
}


def get(identifier):
    """The initializer for a name, or a callable returned as is."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        fn = INITIALIZERS.get(identifier.lower())
        if fn is not None:
            return fn
    raise ValueError(
        f"unknown initializer {identifier!r}; known initializers: {', '.join(sorted(INITIALIZERS))} "
        "(or a callable fn(shape, dtype, device))"
    )


def serialize(fn) -> str:
    """The registry name of initializer ``fn``, or its ``__name__`` for a custom callable."""
    for name, f in INITIALIZERS.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", type(fn).__name__)
