"""Reductions: sum, mean, max, min, logsumexp, norm, each with ``axis=None|int|tuple`` and
``keepdims``.

Tie convention for ``max``/``min``: the gradient is split evenly among the elements equal to the
extreme (as TensorFlow's ``reduce_max``), so it sums to the upstream gradient.
"""

from __future__ import annotations

import builtins

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, record, unary


def _reduced(fn, x, axis, keepdims):
    x = unary(x)
    axes = normalize_axis(axis, x.ndim)
    return x, axes, fn(x.data, axes, keepdims)


def _kshape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand(g, x, axes, keepdims, scale=None):
    """Broadcast a reduced gradient (times ``scale``) back to the input's shape."""
    from .shape import broadcast_to, reshape

    if not keepdims and axes and axes != tuple(range(len(axes))):
        g = reshape(g, _kshape(x.shape, axes))  # reduced axes that are not leading come back as 1s
    return broadcast_to(g, x.shape, scale)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    x = unary(x)
    axes = normalize_axis(axis, x.data.ndim)
    out = x.data.sum(axis=axes, keepdims=keepdims)

    def bwd(g, o, need):
        return (_expand(g, x, axes, keepdims),)

    return record(out, (x,), bwd, "sum")


def mean(x, axis=None, keepdims=False):
    x = unary(x)
    axes = normalize_axis(axis, x.data.ndim)
    count = 1
    for a in axes:
        count *= x.data.shape[a]
    d = x.data
    if count and d.dtype.kind == "f":
        out = d.sum(axis=axes, keepdims=keepdims) * (1.0 / count)  # ndarray.mean costs ~4 µs more
    else:
        out = d.mean(axis=axes, keepdims=keepdims)

    scale = 1.0 / builtins.max(count, 1)

    def bwd(g, o, need):
        return (_expand(g, x, axes, keepdims, scale),)

    return record(out, (x,), bwd, "mean")


def _extreme(name, fn):
    def op(x, axis=None, keepdims=False):
        x, axes, out = _reduced(fn, x, axis, keepdims)
        if x.size == 0:
            raise ValueError(f"{name} of an empty tensor of shape {x.shape} has no identity")

        def bwd(g, o, need):
            od = o.data if keepdims else o.data.reshape(_kshape(x.shape, axes))
            hit = (x.data == od).astype(x.dtype)
            share = Tensor._make(hit / hit.sum(axis=axes, keepdims=True))  # a constant: max'' = 0
            return (_expand(g, x, axes, keepdims) * share,)

        return record(out, (x,), bwd, name)

    op.__name__ = name
    return op


max = _extreme("max", lambda d, a, k: d.max(axis=a, keepdims=k))  # noqa: A001
min = _extreme("min", lambda d, a, k: d.min(axis=a, keepdims=k))  # noqa: A001


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x), computed as m + log Σ exp(x − m) with m the (detached) max: finite for any
    finite input. Gradient: softmax of x along ``axis``."""
    x = unary(x)
    axes = normalize_axis(axis, x.ndim)
    d = x.data
    xp = backend.get_array_module(d)
    m = d.max(axis=axes, keepdims=True) if d.size else xp.zeros((1,) * d.ndim, d.dtype)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.log(xp.exp(d - m).sum(axis=axes, keepdims=True)) + m
    out = s if keepdims else s.reshape(tuple(n for i, n in enumerate(d.shape) if i not in axes))

    def bwd(g, o, need):
        from .math import exp

        ok = _expand(o, x, axes, keepdims)
        return (_expand(g, x, axes, keepdims) * exp(x - ok),)

    return record(out, (x,), bwd, "logsumexp")


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """The 2-norm (Frobenius for several axes): sqrt(Σ x²); the gradient at 0 is taken as 0."""
    if ord not in (None, 2, "euclidean", "fro"):
        raise ValueError(f"norm: only the 2-norm is supported, got ord={ord!r}")
    x = unary(x)
    axes = normalize_axis(axis, x.ndim)
    d = x.data
    xp = backend.get_array_module(d)
    out = xp.sqrt((d * d).sum(axis=axes, keepdims=keepdims))

    def bwd(g, o, need):
        from .math import where

        ok = _expand(o, x, axes, keepdims)
        zero = (ok == 0.0).data
        safe = where(Tensor._make(zero), 1.0, ok)
        return (where(Tensor._make(zero), 0.0, _expand(g, x, axes, keepdims) * x / safe),)

    return record(out, (x,), bwd, "norm")
