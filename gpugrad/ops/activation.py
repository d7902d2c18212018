"""Sigmoid, tanh and relu, each with a backward that is an op of its own.

Every op is a :class:`~gpugrad.ops.op.Op` (the public ``gg.Op``) with a generic array forward
(``forward_cpu``: NumPy, and CuPy when kernels are off) and a raw-kernel forward for CuPy arrays
(``forward_gpu``). The backward of ``sigmoid`` is the op
``sigmoid_grad(y, gy)``, whose own backward is written in gpugrad ops, so every order of
derivative keeps working through the kernels.

Conventions: relu(0) = 0 and relu'(0) = 0 (as PyTorch and TensorFlow).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import kernel_module as _K
from .base import to_float, unary
from .op import KernelOp


def _xp(d):
    return backend.get_array_module(d)




class SigmoidGrad(KernelOp):
    """gx = gy · y · (1 − y)."""

    @staticmethod
    def forward_cpu(y, gy):
        out = 1 - y
        out *= y
        out *= gy
        return out

    @staticmethod
    def forward_gpu(y, gy):
        return _K(y).sigmoid_bwd(y, gy)

    @staticmethod
    def backward(ctx, g):
        y, gy = ctx.inputs
        need = ctx.needs_input_grad
        return (g * gy * (1.0 - 2.0 * y) if need[0] else None, SigmoidGrad._apply2(y, g) if need[1] else None)


class Sigmoid(KernelOp):
    grad_op = (SigmoidGrad, "output")

    @staticmethod
    def forward_cpu(x):
        # σ(x) = 1/(1 + e^{−x}): accurate to a few ulp everywhere; e^{−x} overflows to inf only
        # where σ(x) < 1e-38 (float32), and 1/(1 + inf) = 0 is then the right answer.
        xp = _xp(x)
        if xp is not np:
            return 1 / (1 + xp.exp(-x))
        with np.errstate(over="ignore"):
            if x.ndim == 0:  # ufuncs give scalars for 0-d input, so no out= below
                return (1 / (1 + np.exp(-x))).astype(x.dtype)
            e = np.negative(x)
            np.exp(e, out=e)
            e += 1
            np.reciprocal(e, out=e)
        return e

    @staticmethod
    def forward_gpu(x):
        return _K(x).sigmoid_fwd(x)


class TanhGrad(KernelOp):
    """gx = gy · (1 − y²)."""

    @staticmethod
    def forward_cpu(y, gy):
        out = 1 - y * y
        out *= gy
        return out

    @staticmethod
    def forward_gpu(y, gy):
        return _K(y).tanh_bwd(y, gy)

    @staticmethod
    def backward(ctx, g):
        y, gy = ctx.inputs
        need = ctx.needs_input_grad
        return (-2.0 * g * gy * y if need[0] else None, TanhGrad._apply2(y, g) if need[1] else None)


class Tanh(KernelOp):
    grad_op = (TanhGrad, "output")

    @staticmethod
    def forward_cpu(x):
        return _xp(x).tanh(x)

    @staticmethod
    def forward_gpu(x):
        return _K(x).tanh_fwd(x)


class ReLUGrad(KernelOp):
    """gx = gy where x > 0, else 0. Linear in gy; the step has derivative 0 in x."""

    @staticmethod
    def forward_cpu(x, gy):
        return gy * (x > 0)  # a bool mask multiply: 3x faster than where() on NumPy

    @staticmethod
    def forward_gpu(x, gy):
        return _K(x).relu_bwd(x, gy)

    @staticmethod
    def backward(ctx, g):
        x = ctx.inputs[0]
        return (None, ReLUGrad._apply2(x, g) if ctx.needs_input_grad[1] else None)


class ReLU(KernelOp):
    grad_op = (ReLUGrad, "input")

    @staticmethod
    def forward_cpu(x):
        return _xp(x).maximum(x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def forward_gpu(x):
        return _K(x).relu_fwd(x)


_sigmoid1 = Sigmoid._apply1
_tanh1 = Tanh._apply1


def sigmoid(x) -> Tensor:
    """σ(x) = 1 / (1 + e^{−x}); finite with a finite gradient for any float input (integers are
    taken as float32)."""
    if x.__class__ is not Tensor or x.data.dtype.kind != "f":
        x = to_float(unary(x, "sigmoid"))
    return _sigmoid1(x)


def sigmoid_grad(y, gy) -> Tensor:
    return SigmoidGrad._apply2(y, gy)


def tanh(x) -> Tensor:
    if x.__class__ is not Tensor or x.data.dtype.kind != "f":
        x = to_float(unary(x, "tanh"))
    return _tanh1(x)


def tanh_grad(y, gy) -> Tensor:
    return TanhGrad._apply2(y, gy)


def relu(x) -> Tensor:
    """max(x, 0), with relu'(0) = 0."""
    return ReLU._apply1(x)


def relu_grad(x, gy) -> Tensor:
    return ReLUGrad._apply2(x, gy)
