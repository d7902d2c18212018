"""``gg.linalg``: NumPy's ``numpy.linalg`` names, differentiable to any order (see
:mod:`gpugrad.ops.matrix` and :mod:`gpugrad.ops.decompose`)."""

from __future__ import annotations

from .ops import arrange as _arrange
from .ops.decompose import cholesky, eigh, eigvalsh, qr, svd
from .ops.linalg import matmul
from .ops.matrix import (
    det,
    inv,
    matrix_norm,
    matrix_power,
    multi_dot,
    norm,
    pinv,
    slogdet,
    solve,
    vecdot,
    vector_norm,
)
from .ops.products import cross, outer, tensordot, vdot
from .ops.shape import matrix_transpose


def diagonal(x, *, offset: int = 0):
    """The diagonals of the matrices in the last two axes (NumPy's ``linalg.diagonal``)."""
    return _arrange.diagonal(x, offset, -2, -1)


def trace(x, *, offset: int = 0):
    """The traces of the matrices in the last two axes (NumPy's ``linalg.trace``)."""
    return _arrange.trace(x, offset, -2, -1)


__all__ = [
    "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm", "matrix_power",
    "matrix_transpose", "multi_dot", "norm", "outer", "pinv", "qr", "slogdet", "solve", "svd", "tensordot", "trace",
    "vdot", "vecdot", "vector_norm",
]
