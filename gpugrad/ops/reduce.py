"""Reductions: sum, mean, max, min, logsumexp, norm, each with ``axis=None|int|tuple`` and
``keepdims``.

Tie convention for ``max``/``min``: the gradient is split evenly among the elements equal to the
extreme (as TensorFlow's ``reduce_max``), so it sums to the upstream gradient.
"""

from __future__ import annotations

import builtins

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import _ALL_AXES, normalize_axis, record, to_float, unary
from .shape import broadcast_any, reshape_any

_add_reduce = np.add.reduce


def _kshape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand(g, x, axes, keepdims, scale=None):
    """Broadcast a reduced gradient (times ``scale``) back to the input's shape (a Tensor, or an
    array in a backward on arrays)."""
    if not keepdims and axes and axes != (_ALL_AXES[len(axes)] if len(axes) < 33 else tuple(range(len(axes)))):
        g = reshape_any(g, _kshape(x.data.shape, axes))  # reduced axes that are not leading come back as 1s
    return broadcast_any(g, x.data.shape, scale)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    x = unary(x, "sum")
    axes = normalize_axis(axis, x.data.ndim)
    d = x.data
    if d.__class__ is np.ndarray:  # what ndarray.sum calls, less a Python frame
        out = _add_reduce(d, axes, None, None, keepdims)
    else:
        out = d.sum(axis=axes, keepdims=keepdims)

    def bwd(g, o, need):
        return (_expand(g, x, axes, keepdims),)

    return record(out, (x,), bwd, "sum", bwd)


def mean(x, axis=None, keepdims=False):
    """The mean; integers are averaged as float32, and a mean over nothing is ``nan`` (PyTorch)."""
    x = to_float(unary(x, "mean"))
    axes = normalize_axis(axis, x.data.ndim)
    count = 1
    for a in axes:
        count *= x.data.shape[a]
    d = x.data
    # sum * (1/n): ndarray.mean costs ~4 µs more, and warns for an empty axis; np.add.reduce is
    # what ndarray.sum calls, less a Python frame
    if d.__class__ is np.ndarray:
        s = _add_reduce(d, axes, None, None, keepdims)
    else:
        s = d.sum(axis=axes, keepdims=keepdims)
    out = s * (1.0 / count if count else float("nan"))

    scale = 1.0 / builtins.max(count, 1)

    def bwd(g, o, need):
        return (_expand(g, x, axes, keepdims, scale),)

    return record(out, (x,), bwd, "mean", bwd)


def _extreme(name, fn):
    def op(x, axis=None, keepdims=False):
        x = unary(x, name)
        axes = normalize_axis(axis, x.ndim)
        for a in axes:
            if x.shape[a] == 0:
                raise ValueError(
                    f"{name}: axis {a} of the tensor of shape {x.shape} is empty, and {name} over nothing "
                    "has no value; reduce over a non-empty axis"
                )
        out = fn(x.data, axes, keepdims)

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


def _shift(d, axes):
    """The max along ``axes`` (keepdims) as a constant shift: 0 where it is not finite or the
    axis is empty, so e^{x − m} never overflows and never meets inf − inf."""
    xp = backend.get_array_module(d)
    if any(d.shape[a] == 0 for a in axes):
        return xp.zeros(_kshape(d.shape, axes), d.dtype)
    m = d.max(axis=axes, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x), computed as m + log Σ exp(x − m) with m the (detached) max: finite for any
    finite input; −inf over an empty axis. Gradient: softmax of x along ``axis``, formed from the
    shifted inputs as softmax is (exact at any logit scale)."""
    x = to_float(unary(x, "logsumexp"))
    axes = normalize_axis(axis, x.ndim)
    d = x.data
    xp = backend.get_array_module(d)
    m = _shift(d, axes)
    with np.errstate(divide="ignore"):  # log(0) = -inf: a sum over nothing, or all -inf
        s = xp.log(xp.exp(d - m).sum(axis=axes, keepdims=True)) + m
    out = s if keepdims else s.reshape(tuple(n for i, n in enumerate(d.shape) if i not in axes))

    def bwd(g, o, need):
        from .math import exp

        e = exp(x - Tensor._make(m))  # m is a constant: the shift cancels in e / Σe
        return (_expand(g, x, axes, keepdims) * (e / sum(e, axis=axes, keepdims=True)),)

    return record(out, (x,), bwd, "logsumexp")


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """The 2-norm (Frobenius for several axes): sqrt(Σ x²); the gradient at 0 is taken as 0.
    (``gg.norm`` takes every ``ord``: :func:`gpugrad.ops.matrix.reduction_norm`.)"""
    if ord not in (None, 2, "euclidean", "fro"):
        raise ValueError(f"norm: this is the 2-norm, got ord={ord!r}")
    x = to_float(unary(x, "norm"))
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
