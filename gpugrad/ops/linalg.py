"""Matrix product with NumPy's ``matmul`` semantics (1-D operands, batch broadcasting)."""

from __future__ import annotations

from ..tensor import Tensor
from .base import needs_promotion, operand, pair, promote, record, unbroadcast
from .shape import expand_dims, matrix_transpose, reshape


def matmul(a, b) -> Tensor:
    if isinstance(a, Tensor) and isinstance(b, Tensor) and type(a.data) is type(b.data):
        ad, bd = a.data, b.data
        if needs_promotion(ad, bd):
            ad, bd = promote(ad, bd)
    else:
        a, b, ad, bd = pair(a, b, "matmul")
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or ad.ndim == 0 or bd.ndim == 0:
        raise ValueError("matmul: both operands must have at least one dimension; use * for scalars")
    ka = ad.shape[-1]
    kb = bd.shape[-2] if bd.ndim > 1 else bd.shape[0]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {tuple(ad.shape)} and {tuple(bd.shape)} are not aligned: "
            f"{ka} (last axis of the first) != {kb} ({'second-to-last' if bd.ndim > 1 else 'only'} "
            "axis of the second)"
        )
    try:
        out = ad @ bd
    except ValueError:
        raise ValueError(
            f"matmul: batch shapes of {tuple(ad.shape)} and {tuple(bd.shape)} cannot be broadcast together"
        ) from None
    return record(out, (a, b), _matmul_bwd, "matmul", _matmul_fast)


def _matmul_bwd(g, out, need):
    a, b = out._node.inputs
    ga = gb = None
    if a.ndim == 1 and b.ndim == 1:
        return (g * b if need[0] else None, g * a if need[1] else None)
    if a.ndim == 1:  # (k,) @ (..., k, n) -> (..., n)
        g2 = expand_dims(g, -2)  # (..., 1, n)
        if need[0]:
            ga = unbroadcast(reshape(g2 @ matrix_transpose(b), g2.shape[:-2] + (a.shape[0],)), a)
        if need[1]:
            gb = unbroadcast(reshape(a, (a.shape[0], 1)) @ g2, b)
        return ga, gb
    if b.ndim == 1:  # (..., m, k) @ (k,) -> (..., m)
        g2 = expand_dims(g, -1)  # (..., m, 1)
        if need[0]:
            ga = unbroadcast(g2 @ reshape(b, (1, b.shape[0])), a)
        if need[1]:
            gb = unbroadcast(reshape(matrix_transpose(a) @ g2, g2.shape[:-2] + (b.shape[0],)), b)
        return ga, gb
    if need[0]:
        ga = unbroadcast(matmul_nt(g, b), a)
    if need[1]:
        gb = unbroadcast(matmul_tn(a, g), b)
    return ga, gb


def _matmul_fast(g, out, need):
    """The backward on arrays of two operands of 2 or more axes (the others: None, the rule above)."""
    a, b = out._node.inputs
    ad, bd = a.data, b.data
    if ad.ndim < 2 or bd.ndim < 2:
        return None
    return (
        unbroadcast(g @ bd.swapaxes(-1, -2), a) if need[0] else None,  # matmul_nt(g, b)
        unbroadcast(ad.swapaxes(-1, -2) @ g, b) if need[1] else None,  # matmul_tn(a, g)
    )


def matmul_nt(a: Tensor, b: Tensor) -> Tensor:
    """a @ bᵀ (last two axes) in one op: d a = G @ b, d b = Gᵀ @ a."""
    return record(a.data @ b.data.swapaxes(-1, -2), (a, b), _nt_bwd, "matmul_nt", _nt_fast)


def matmul_tn(a: Tensor, b: Tensor) -> Tensor:
    """aᵀ @ b (last two axes) in one op: d a = b @ Gᵀ, d b = a @ G."""
    return record(a.data.swapaxes(-1, -2) @ b.data, (a, b), _tn_bwd, "matmul_tn", _tn_fast)


def _nt_bwd(g, out, need):
    a, b = out._node.inputs
    return (
        unbroadcast(g @ b, a) if need[0] else None,
        unbroadcast(matmul_tn(g, a), b) if need[1] else None,
    )


def _tn_bwd(g, out, need):
    a, b = out._node.inputs
    return (
        unbroadcast(matmul_nt(b, g), a) if need[0] else None,
        unbroadcast(a @ g, b) if need[1] else None,
    )


def _nt_fast(g, out, need):
    a, b = out._node.inputs
    return (
        unbroadcast(g @ operand(b, g), a) if need[0] else None,
        unbroadcast(g.swapaxes(-1, -2) @ a.data, b) if need[1] else None,
    )


def _tn_fast(g, out, need):
    a, b = out._node.inputs
    return (
        unbroadcast(b.data @ g.swapaxes(-1, -2), a) if need[0] else None,
        unbroadcast(operand(a, g) @ g, b) if need[1] else None,
    )
