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

from .. import backend
from ..graph import composed_vjp, record
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
    # softplus(z) − z·t = w·z + log(1 + e^{−|z|}) with w = 1 − t where z ≥ 0, −t below: never
    # overflows, and a zero weight gives 0 even at z = ±inf (no inf − inf, no 0·inf)
    from .math import abs as _abs
    from .math import exp, log1p, where
    from .reduce import mean

    w = where(z >= 0.0, 1.0 - t, -t)
    return mean(w * _finite_where_weighted(w, z) + log1p(exp(-_abs(z))), axis=-1)


def _finite_where_weighted(w, z):
    """``z`` with 0 where its weight ``w`` is 0 and ``z`` is ±inf: ``w·z`` is then 0 there (the
    limit), not nan, and its derivatives elsewhere are untouched. The mask is a constant."""
    from .math import where

    wd, zd = w.data, z.data
    masked = (wd == 0) & ~backend.get_array_module(zd).isfinite(zd)
    return where(Tensor._make(masked), 0.0, z)


def _bce_logits_grad(t, z, g):
    from .activation import sigmoid

    return _col(g) * (1.0 / z.shape[-1]) * (sigmoid(z) - t)


def _ce(t, z):
    # a class with t = 0 adds nothing, even a masked logit of −inf (no 0·inf)
    from .reduce import logsumexp
    from .reduce import sum as _sum

    return logsumexp(z, axis=-1) * _sum(t, axis=-1) - _sum(t * _finite_where_weighted(t, z), axis=-1)


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


def _fused_loss(name, forward, grad, kfwd, kbwd, empty=float("nan")):
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

    def loss_backward_arrays(ctx, g):
        if ctx._need[1]:  # the target's gradient too: the recorded rule above
            return None
        p, t = ctx.inputs
        return grad_op.run(p.data, t.data, g, saved=ctx.residual), None

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
        "forward_gpu": staticmethod(lambda p, t: kfwd(_K(p), _like(t, p), p)),
        "backward": staticmethod(loss_backward),
        "backward_arrays": staticmethod(loss_backward_arrays),
    })
    grad_op = type(name + "_grad", (KernelOp,), {
        "__doc__": f"d {name} / d pred, weighted by the per-row upstream gradient g; fused.",
        "forward_cpu": staticmethod(lambda p, t, g, saved: kbwd(array_kernels, _like(t, p), p, _g(g, p), saved)),
        "forward_gpu": staticmethod(lambda p, t, g, saved: kbwd(_K(p), _like(t, p), p, _g(g, p), saved)),
        "backward": staticmethod(grad_backward),
    })
    loss_op.empty = empty  # each row's loss over an empty last axis: nan for a mean, 0 for a sum
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
    empty=0.0,
)
SPARSE_SOFTMAX_CE = _fused_loss(
    "sparse_softmax_cross_entropy", _sparse_ce, _sparse_ce_grad,
    lambda k, t, z: k.softmax_ce_sparse_fwd(z, t),
    lambda k, t, z, g, saved: k.softmax_ce_sparse_bwd(z, saved, t, g),
    empty=0.0,
)


def row_loss(spec, target: Tensor, pred: Tensor) -> Tensor:
    """``spec``'s per-row loss of ``pred`` against ``target`` (shapes already checked).

    The forward and the first backward are one fused pass each; the backward's own backward
    (second order) differentiates the composed form again.
    """
    if pred.data.shape[-1:] == (0,):
        return _empty_rows(spec, target, pred)
    return spec.apply(pred, target)


def _empty_rows(spec, target: Tensor, pred: Tensor) -> Tensor:
    """Rows of a loss over an empty last axis (as PyTorch: ``nan`` for a mean over nothing, 0 for a
    sum); the gradients are empty arrays, constant to every order."""
    from .creation import zeros_like

    d = pred.data
    out = backend.get_array_module(d).full(d.shape[:-1], spec.empty, dtype=d.dtype)

    def bwd(g, o, need):
        return (zeros_like(target) if need[0] else None, zeros_like(pred) if need[1] else None)

    return record(out, (target, pred), bwd, spec.__name__)
