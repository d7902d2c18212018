"""Softmax and log-softmax along one axis, and their backward ops.

The kernels work on the last axis of a contiguous [rows, cols] buffer; another axis is moved
last (one transpose copy) and back. The generic forward subtracts the row max before ``exp``,
so logits of ±1e4 stay finite; log-softmax is ``x − logsumexp(x)``, never ``log(softmax)``.
"""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .base import kernels_for, normalize_axis, record, to_float, unary


def _xp(d):
    return backend.get_array_module(d)


def _last(fn, x, axis, *more):
    """Apply a last-axis kernel ``fn`` to arrays along ``axis``."""
    nd = x.ndim
    if axis == nd - 1 or nd <= 1:
        return fn(x, *more)
    xp = _xp(x)
    mv = [xp.moveaxis(a, axis, -1) for a in (x, *more)]
    return xp.moveaxis(fn(*mv), -1, axis)


def _softmax_np(x, axis):
    xp = _xp(x)
    if x.size == 0:  # no row has an element to take the max of
        return x.copy()
    m = x.max(axis=axis, keepdims=True)
    e = xp.exp(x - xp.where(xp.isfinite(m), m, 0))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_np(x, axis):
    xp = _xp(x)
    if x.size == 0:
        return x.copy()
    m = x.max(axis=axis, keepdims=True)
    z = x - xp.where(xp.isfinite(m), m, 0)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def _axis(x: Tensor, axis) -> int:
    if x.ndim == 0:
        raise ValueError("softmax needs a tensor of at least one dimension")
    return normalize_axis(axis, x.ndim)[0]


def softmax(x, axis: int = -1) -> Tensor:
    """p_i = e^{x_i − m} / Σ_k e^{x_k − m} with m = max_k x_k."""
    x = to_float(unary(x, "softmax"))
    ax = _axis(x, axis)
    d = x.data
    k = kernels_for(d) if d.size else None  # an empty tensor: nothing to launch
    out = _last(k.softmax_fwd, d, ax) if k is not None else _softmax_np(d, ax)

    def bwd(g, y, need):
        return (softmax_grad(y, g, ax),)

    return record(out, (x,), bwd, "softmax")


def softmax_grad(y, gy, axis: int) -> Tensor:
    """gx = y ⊙ (gy − Σ gy⊙y). Its backward, for upstream G:
    d/dy = G ⊙ (gy − s) − gy ⊙ Σ(G⊙y), d/dgy = softmax_grad(y, G)."""
    from .reduce import sum as _sum

    d_y, d_g = y.data, gy.data
    k = kernels_for(d_y) if d_y.size else None
    if k is not None:
        out = _last(k.softmax_bwd, d_y, axis, d_g)
    else:
        out = d_y * (d_g - (d_g * d_y).sum(axis=axis, keepdims=True))

    def bwd(G, o, need):
        y_, gy_ = o._node.inputs
        r_y = r_g = None
        if need[0]:
            s = _sum(gy_ * y_, axis=axis, keepdims=True)
            r_y = G * (gy_ - s) - gy_ * _sum(G * y_, axis=axis, keepdims=True)
        if need[1]:
            r_g = softmax_grad(y_, G, axis)
        return r_y, r_g

    return record(out, (y, gy), bwd, "softmax_grad")


def log_softmax(x, axis: int = -1) -> Tensor:
    """x − logsumexp(x): finite for any finite logits."""
    x = to_float(unary(x, "log_softmax"))
    ax = _axis(x, axis)
    d = x.data
    k = kernels_for(d) if d.size else None  # an empty tensor: nothing to launch
    out = _last(k.log_softmax_fwd, d, ax) if k is not None else _log_softmax_np(d, ax)

    def bwd(g, y, need):
        return (log_softmax_grad(y, g, ax),)

    return record(out, (x,), bwd, "log_softmax")


def log_softmax_grad(y, gy, axis: int) -> Tensor:
    """gx = gy − e^{y} Σ gy. Backward for upstream G: d/dy = −G ⊙ e^{y} Σ gy,
    d/dgy = G − Σ(G ⊙ e^{y})."""
    from .math import exp
    from .reduce import sum as _sum

    d_y, d_g = y.data, gy.data
    k = kernels_for(d_y) if d_y.size else None
    if k is not None:
        out = _last(k.log_softmax_bwd, d_y, axis, d_g)
    else:
        out = d_g - _xp(d_y).exp(d_y) * d_g.sum(axis=axis, keepdims=True)

    def bwd(G, o, need):
        y_, gy_ = o._node.inputs
        p = exp(y_)
        r_y = -G * p * _sum(gy_, axis=axis, keepdims=True) if need[0] else None
        r_g = G - _sum(G * p, axis=axis, keepdims=True) if need[1] else None
        return r_y, r_g

    return record(out, (y, gy), bwd, "log_softmax_grad")
