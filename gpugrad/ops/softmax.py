"""Softmax and log-softmax along one axis, and their backward ops.

The kernels work on the last axis of a contiguous [rows, cols] buffer; another axis is moved
last (one transpose copy) and back. The generic forward subtracts the row max before ``exp``,
so logits of ±1e4 stay finite; log-softmax is ``x − logsumexp(x)``, never ``log(softmax)``.
"""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .base import kernel_module as _K
from .base import normalize_axis, to_float, unary
from .op import KernelOp


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



class SoftmaxGrad(KernelOp):
    """gx = y ⊙ (gy − Σ gy⊙y). Its backward, for upstream G:
    d/dy = G ⊙ (gy − s) − gy ⊙ Σ(G⊙y), d/dgy = softmax_grad(y, G)."""

    @staticmethod
    def forward_cpu(y, gy, axis):
        return y * (gy - (gy * y).sum(axis=axis, keepdims=True))

    @staticmethod
    def forward_gpu(y, gy, axis):
        return _last(_K(y).softmax_bwd, y, axis, gy)

    @staticmethod
    def backward(ctx, G):
        from .reduce import sum as _sum

        y, gy = ctx.inputs
        axis = ctx.axis
        need = ctx.needs_input_grad
        r_y = r_g = None
        if need[0]:
            s = _sum(gy * y, axis=axis, keepdims=True)
            r_y = G * (gy - s) - gy * _sum(G * y, axis=axis, keepdims=True)
        if need[1]:
            r_g = SoftmaxGrad.apply(y, G, axis=axis)
        return r_y, r_g


class LogSoftmaxGrad(KernelOp):
    """gx = gy − e^{y} Σ gy. Backward for upstream G: d/dy = −G ⊙ e^{y} Σ gy,
    d/dgy = G − Σ(G ⊙ e^{y})."""

    @staticmethod
    def forward_cpu(y, gy, axis):
        return gy - _xp(y).exp(y) * gy.sum(axis=axis, keepdims=True)

    @staticmethod
    def forward_gpu(y, gy, axis):
        return _last(_K(y).log_softmax_bwd, y, axis, gy)

    @staticmethod
    def backward(ctx, G):
        from .math import exp
        from .reduce import sum as _sum

        y, gy = ctx.inputs
        axis = ctx.axis
        need = ctx.needs_input_grad
        p = exp(y)
        r_y = -G * p * _sum(gy, axis=axis, keepdims=True) if need[0] else None
        r_g = G - _sum(G * p, axis=axis, keepdims=True) if need[1] else None
        return r_y, r_g


class Softmax(KernelOp):
    """p_i = e^{x_i − m} / Σ_k e^{x_k − m} with m = max_k x_k, along ``axis``."""

    grad_op = (SoftmaxGrad, "output")

    @staticmethod
    def forward_cpu(x, axis):
        return _softmax_np(x, axis)

    @staticmethod
    def forward_gpu(x, axis):
        return _last(_K(x).softmax_fwd, x, axis)


class LogSoftmax(KernelOp):
    """x − logsumexp(x) along ``axis``."""

    grad_op = (LogSoftmaxGrad, "output")

    @staticmethod
    def forward_cpu(x, axis):
        return _log_softmax_np(x, axis)

    @staticmethod
    def forward_gpu(x, axis):
        return _last(_K(x).log_softmax_fwd, x, axis)


def softmax(x, axis: int = -1) -> Tensor:
    """p_i = e^{x_i − m} / Σ_k e^{x_k − m} with m = max_k x_k."""
    x = to_float(unary(x, "softmax"))
    return Softmax.apply(x, axis=_axis(x, axis))


def softmax_grad(y, gy, axis: int) -> Tensor:
    return SoftmaxGrad.apply(y, gy, axis=axis)


def log_softmax(x, axis: int = -1) -> Tensor:
    """x − logsumexp(x): finite for any finite logits."""
    x = to_float(unary(x, "log_softmax"))
    return LogSoftmax.apply(x, axis=_axis(x, axis))


def log_softmax_grad(y, gy, axis: int) -> Tensor:
    return LogSoftmaxGrad.apply(y, gy, axis=axis)
