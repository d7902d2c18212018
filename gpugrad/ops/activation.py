"""Sigmoid, tanh and relu, each with a backward that is an op of its own.

Every op has a generic array forward (``forward_cpu``: NumPy, and CuPy when kernels are off) and
a raw-kernel forward for CuPy arrays (``forward_gpu``). The backward of ``sigmoid`` is the op
``sigmoid_grad(y, gy)``, whose own backward is written in gpugrad ops, so every order of
derivative keeps working through the kernels.

Conventions: relu(0) = 0 and relu'(0) = 0 (as PyTorch and TensorFlow).
"""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .base import kernels_for, record, unary


def _xp(d):
    return backend.get_array_module(d)


class Sigmoid:
    @staticmethod
    def forward_cpu(x):
        # σ(x) = 1/(1+e^{-x}) for x ≥ 0 and e^{x}/(1+e^{x}) below: exp never overflows.
        xp = _xp(x)
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def forward_gpu(k, x):
        return k.sigmoid_fwd(x)

    @staticmethod
    def backward(g, out, need):
        return (sigmoid_grad(out, g),)


class SigmoidGrad:
    """gx = gy · y · (1 − y)."""

    @staticmethod
    def forward_cpu(y, gy):
        return gy * y * (1 - y)

    @staticmethod
    def forward_gpu(k, y, gy):
        return k.sigmoid_bwd(y, gy)

    @staticmethod
    def backward(g, out, need):
        y, gy = out._node.inputs
        return (g * gy * (1.0 - 2.0 * y) if need[0] else None, sigmoid_grad(y, g) if need[1] else None)


class Tanh:
    @staticmethod
    def forward_cpu(x):
        return _xp(x).tanh(x)

    @staticmethod
    def forward_gpu(k, x):
        return k.tanh_fwd(x)

    @staticmethod
    def backward(g, out, need):
        return (tanh_grad(out, g),)


class TanhGrad:
    """gx = gy · (1 − y²)."""

    @staticmethod
    def forward_cpu(y, gy):
        return gy * (1 - y * y)

    @staticmethod
    def forward_gpu(k, y, gy):
        return k.tanh_bwd(y, gy)

    @staticmethod
    def backward(g, out, need):
        y, gy = out._node.inputs
        return (-2.0 * g * gy * y if need[0] else None, tanh_grad(y, g) if need[1] else None)


class ReLU:
    @staticmethod
    def forward_cpu(x):
        return _xp(x).maximum(x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def forward_gpu(k, x):
        return k.relu_fwd(x)

    @staticmethod
    def backward(g, out, need):
        return (relu_grad(out._node.inputs[0], g),)


class ReLUGrad:
    """gx = gy where x > 0, else 0. Linear in gy; the step has derivative 0 in x."""

    @staticmethod
    def forward_cpu(x, gy):
        return _xp(gy).where(x > 0, gy, 0).astype(gy.dtype, copy=False)

    @staticmethod
    def forward_gpu(k, x, gy):
        return k.relu_bwd(x, gy)

    @staticmethod
    def backward(g, out, need):
        x, _ = out._node.inputs
        return (None, relu_grad(x, g) if need[1] else None)


def apply(op, *inputs) -> Tensor:
    """Run ``op``'s kernel forward on CuPy arrays (generic forward otherwise) and record it."""
    ts = tuple(unary(t) for t in inputs)
    ds = [t.data for t in ts]
    k = kernels_for(ds[0])
    out = op.forward_gpu(k, *ds) if k is not None else op.forward_cpu(*ds)
    return record(out, ts, op.backward, op.__name__)


def sigmoid(x) -> Tensor:
    """σ(x) = 1 / (1 + e^{−x}); finite with a finite gradient for any float input."""
    return apply(Sigmoid, x)


def sigmoid_grad(y, gy) -> Tensor:
    return apply(SigmoidGrad, y, gy)


def tanh(x) -> Tensor:
    return apply(Tanh, x)


def tanh_grad(y, gy) -> Tensor:
    return apply(TanhGrad, y, gy)


def relu(x) -> Tensor:
    """max(x, 0), with relu'(0) = 0."""
    return apply(ReLU, x)


def relu_grad(x, gy) -> Tensor:
    return apply(ReLUGrad, x, gy)
