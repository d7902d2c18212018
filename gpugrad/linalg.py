"""``gg.linalg``: NumPy's ``numpy.linalg`` names, differentiable to any order (see
:mod:`gpugrad.ops.matrix` and :mod:`gpugrad.ops.decompose`)."""

from __future__ import annotations

from .ops.arrange import diagonal, trace
from .ops.decompose import cholesky, eigh, eigvalsh, qr, svd
from .ops.linalg import matmul
from .ops.matrix import det, inv, matrix_power, norm, pinv, slogdet, solve
from .ops.products import outer, tensordot, vdot

__all__ = [
    "cholesky", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_power", "norm", "outer", "pinv",
    "qr", "slogdet", "solve", "svd", "tensordot", "trace", "vdot",
]
