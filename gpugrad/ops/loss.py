"""Per-row losses with fused CUDA kernels, and their backward ops.

Each loss reduces the last axis to one value per row: ``rows = loss(target, pred)``. The forward
and the first backward are one fused pass each: a CUDA kernel launch on CuPy float arrays
(:mod:`gpugrad.kernels`), a few array calls elsewhere (:mod:`.array_kernels`). The backward op's
own backward (second order) differentiates the composed gpugrad expressions below again
(``composed_vjp``): exact, and only paid for when a higher order is asked for.

The fused softmax-cross-entropy forward keeps only per-row values for the backward (the row shift,
log of the sum and Σt), which writes ``(softmax(z)·Σt − t)·g`` straight from the logits in one pass.
"""

from __future__ import annotations

from ..tensor import Tensor
from . import array_kernels
from .base import kernels_for, record

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped into [eps, 1 - eps]


def _col(g):
    from .shape import expand_dims

    return expand_dims(g, -1)


# -- composed forms (gpugrad ops; differentiable to any order) ----------------------------------


def _mse(t, p):
    from .math import square
    from .reduce import mean

    return mean(square(p - t), axis=-1)


def _mse_grad(t, p, g):
    return (p - t) * _col(g) * (2.0 / p.shape[-1])


def _bce(t, p):
    from .math import clip, log
    from .reduce import mean

    pc = clip(p, EPSILON, 1.0 - EPSILON)
    return -mean(t * log(pc) + (1.0 - t) * log(1.0 - pc), axis=-1)


def _bce_grad(t, p, g):
    from .math import clip, where

    pc = clip(p, EPSILON, 1.0 - EPSILON)
    inside = Tensor._make((p.data > EPSILON) & (p.data < 1.0 - EPSILON))  # the clip is flat outside
    return where(inside, _col(g) * (1.0 / p.shape[-1]) * (pc - t) / (pc * (1.0 - pc)), 0.0)


def _bce_logits(t, z):
    # max(z, 0) − z·t + log(1 + e^{−|z|}): never overflows
    from .math import abs as _abs
    from .math import exp, log1p, maximum
    from .reduce import mean

    return mean(maximum(z, 0.0) - z * t + log1p(exp(-_abs(z))), axis=-1)


def _bce_logits_grad(t, z, g):
    from .activation import sigmoid

    return _col(g) * (1.0 / z.shape[-1]) * (sigmoid(z) - t)


def _ce(t, z):
    from .reduce import logsumexp
    from .reduce import sum as _sum

    return logsumexp(z, axis=-1) * _sum(t, axis=-1) - _sum(t * z, axis=-1)


def _ce_grad(t, z, g):
    from .reduce import sum as _sum
    from .softmax import softmax

    return _col(g) * (softmax(z, -1) * _sum(t, axis=-1, keepdims=True) - t)


def _onehot_like(labels, z):
    from .shape import one_hot

    return one_hot(labels, z.shape[-1], dtype=z.dtype)


def _sparse_ce(labels, z):
    return _ce(_onehot_like(labels, z), z)


def _sparse_ce_grad(labels, z, g):
    from .softmax import softmax

    return _col(g) * (softmax(z, -1) - _onehot_like(labels, z))


class RowLoss:
    """One fused loss: the composed forward and gradient, and the kernel entry points."""

    def __init__(self, name, forward, grad, kfwd, kbwd):
        self.name = name
        self.forward = forward  # (target, pred) -> rows
        self.grad = grad  # (target, pred, g_rows) -> d rows / d pred, weighted by g
        self.kfwd = kfwd  # (kernels, target, pred) -> (rows, saved)
        self.kbwd = kbwd  # (kernels, target, pred, g_rows, saved) -> d pred


MSE = RowLoss(
    "mse", _mse, _mse_grad,
    lambda k, t, p: (k.mse_fwd(t, p), None),
    lambda k, t, p, g, s: k.mse_bwd(t, p, g),
)
BCE = RowLoss(
    "binary_crossentropy", _bce, _bce_grad,
    lambda k, t, p: (k.bce_fwd(t, p, EPSILON), None),
    lambda k, t, p, g, s: k.bce_bwd(t, p, g, EPSILON),
)
BCE_LOGITS = RowLoss(
    "binary_crossentropy_logits", _bce_logits, _bce_logits_grad,
    lambda k, t, z: (k.bce_logits_fwd(t, z), None),
    lambda k, t, z, g, s: k.bce_logits_bwd(t, z, g),
)
SOFTMAX_CE = RowLoss(
    "softmax_cross_entropy", _ce, _ce_grad,
    lambda k, t, z: k.softmax_ce_fwd(z, t),
    lambda k, t, z, g, saved: k.softmax_ce_bwd(z, saved, t, g),
)
SPARSE_SOFTMAX_CE = RowLoss(
    "sparse_softmax_cross_entropy", _sparse_ce, _sparse_ce_grad,
    lambda k, t, z: k.softmax_ce_sparse_fwd(z, t),
    lambda k, t, z, g, saved: k.softmax_ce_sparse_bwd(z, saved, t, g),
)


def _fused(d):
    """The CUDA kernels for a float32/float64 CuPy array, else the array-call versions."""
    return kernels_for(d) or array_kernels


def _like(target, pred):
    tdat = target.data
    if tdat.dtype.kind == "f" and tdat.dtype != pred.dtype:
        tdat = tdat.astype(pred.dtype)
    return tdat


def row_loss(spec: RowLoss, target: Tensor, pred: Tensor) -> Tensor:
    """``spec``'s per-row loss of ``pred`` against ``target`` (shapes already checked).

    The forward and the first backward are one fused pass each; the backward's own backward
    (second order) differentiates the composed form again.
    """
    rows, saved = spec.kfwd(_fused(pred.data), _like(target, pred), pred.data)

    def bwd(g, out, need):
        from ..tape import composed_vjp

        gt = composed_vjp(spec.forward, (target, pred), g, (True, False))[0] if need[0] else None
        gp = _row_loss_grad(spec, target, pred, g, saved) if need[1] else None
        return gt, gp

    return record(rows, (target, pred), bwd, spec.name)


def _row_loss_grad(spec, target, pred, g, saved) -> Tensor:
    gd = g.data
    if gd.dtype != pred.dtype:
        gd = gd.astype(pred.dtype)
    out = spec.kbwd(_fused(pred.data), _like(target, pred), pred.data, gd, saved)

    def bwd(G, o, need):
        from ..tape import composed_vjp

        return composed_vjp(spec.grad, (target, pred, g), G, need)

    return record(out, (target, pred, g), bwd, spec.name + "_grad")
