"""Per-row losses with fused CUDA kernels, and their backward ops.

Each loss reduces the last axis to one value per row: ``rows = loss(target, pred)``. Each is a
pair of :class:`~gpugrad.ops.op.Op` (the public ``gg.Op``): the loss over ``(pred, target)`` and
its backward op. The forward and the first backward are one fused pass each: a CUDA kernel
launch on CuPy float arrays (:mod:`gpugrad.kernels`), a few array calls elsewhere
(:mod:`.array_kernels`). The backward op's
own backward (second order) differentiates the composed gpugrad expressions below again
(``composed_vjp``): exact, and only paid for when a higher order is asked for.

The fused softmax-cross-entropy forward keeps only per-row values for the backward (the row shift,
log of the sum and Σt), which writes ``(softmax(z)·Σt − t)·g`` straight from the logits in one pass.
"""

from __future__ import annotations

from ..graph import composed_vjp
from ..tensor import Tensor
from . import array_kernels
from .base import kernel_module as _K
from .op import KernelOp

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


def _like(t, p):
    """The target array in the prediction's float dtype (labels and other integer targets stay)."""
    return t.astype(p.dtype) if t.dtype.kind == "f" and t.dtype != p.dtype else t


def _fused_loss(name, forward, grad, kfwd, kbwd):
    """Two ops for one fused per-row loss: ``name`` over (pred, target) and its backward op.

    ``forward(t, p)`` and ``grad(t, p, g)`` are the composed forms in gpugrad ops;
    ``kfwd(k, t, p) -> (rows, saved)`` and ``kbwd(k, t, p, g, saved)`` the fused passes, run with
    ``k`` = the CUDA kernels (float CuPy arrays) or :mod:`.array_kernels` (everything else).
    """

    def loss_backward(ctx, g):
        p, t = ctx.inputs
        need = ctx.needs_input_grad
        gp = grad_op.apply(p, t, g, saved=ctx.residual) if need[0] else None
        gt = composed_vjp(forward, (t, p), g, (True, False))[0] if need[1] else None
        return gp, gt

    def grad_backward(ctx, G):
        p, t, g = ctx.inputs
        need = ctx.needs_input_grad
        gt, gp, gg = composed_vjp(grad, (t, p, g), G, (need[1], need[0], need[2]))
        return gp, gt, gg

    def _g(g, p):
        return g.astype(p.dtype) if g.dtype != p.dtype else g

    loss_op = type(name, (KernelOp,), {
        "__doc__": f"The per-row {name} loss of (pred, target), fused; the second output of kfwd is saved.",
        "residual": True,
        "forward_cpu": staticmethod(lambda p, t: kfwd(array_kernels, _like(t, p), p)),
        "forward_gpu": staticmethod(lambda p, t: kfwd(_K(), _like(t, p), p)),
        "backward": staticmethod(loss_backward),
    })
    grad_op = type(name + "_grad", (KernelOp,), {
        "__doc__": f"d {name} / d pred, weighted by the per-row upstream gradient g; fused.",
        "forward_cpu": staticmethod(lambda p, t, g, saved: kbwd(array_kernels, _like(t, p), p, _g(g, p), saved)),
        "forward_gpu": staticmethod(lambda p, t, g, saved: kbwd(_K(), _like(t, p), p, _g(g, p), saved)),
        "backward": staticmethod(grad_backward),
    })
    loss_op.forward = staticmethod(forward)  # the composed forms, for reference and tests
    loss_op.grad = staticmethod(grad)
    return loss_op


MSE = _fused_loss(
    "mse", _mse, _mse_grad,
    lambda k, t, p: (k.mse_fwd(t, p), None),
    lambda k, t, p, g, s: k.mse_bwd(t, p, g),
)
BCE = _fused_loss(
    "binary_crossentropy", _bce, _bce_grad,
    lambda k, t, p: (k.bce_fwd(t, p, EPSILON), None),
    lambda k, t, p, g, s: k.bce_bwd(t, p, g, EPSILON),
)
BCE_LOGITS = _fused_loss(
    "binary_crossentropy_logits", _bce_logits, _bce_logits_grad,
    lambda k, t, z: (k.bce_logits_fwd(t, z), None),
    lambda k, t, z, g, s: k.bce_logits_bwd(t, z, g),
)
SOFTMAX_CE = _fused_loss(
    "softmax_cross_entropy", _ce, _ce_grad,
    lambda k, t, z: k.softmax_ce_fwd(z, t),
    lambda k, t, z, g, saved: k.softmax_ce_bwd(z, saved, t, g),
)
SPARSE_SOFTMAX_CE = _fused_loss(
    "sparse_softmax_cross_entropy", _sparse_ce, _sparse_ce_grad,
    lambda k, t, z: k.softmax_ce_sparse_fwd(z, t),
    lambda k, t, z, g, saved: k.softmax_ce_sparse_bwd(z, saved, t, g),
)


def row_loss(spec, target: Tensor, pred: Tensor) -> Tensor:
    """``spec``'s per-row loss of ``pred`` against ``target`` (shapes already checked).

    The forward and the first backward are one fused pass each; the backward's own backward
    (second order) differentiates the composed form again.
    """
    return spec.apply(pred, target)
