"""Linear algebra on the last two axes (batched over the others), under NumPy's ``linalg``
names: ``inv``, ``det``, ``slogdet``, ``solve``, ``pinv``, ``matrix_power`` and ``norm`` with every
``ord``. Gradients follow M. Giles, "An extended collection of matrix derivative results" (2008),
written in gpugrad ops so that every order works."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, record, to_float, unary
from .linalg import matmul
from .shape import expand_dims, matrix_transpose, reshape

T = matrix_transpose

SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")


def _xp(d):
    return backend.get_array_module(d)


def square_matrices(x, op: str) -> Tensor:
    """``x`` as a float tensor of square matrices (last two axes), or a ValueError naming its shape."""
    x = to_float(unary(x, op))
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{op}: needs square matrices in the last two axes, got shape {x.shape}")
    return x


def matrices(x, op: str) -> Tensor:
    x = to_float(unary(x, op))
    if x.ndim < 2:
        raise ValueError(f"{op}: needs matrices (at least 2 dimensions), got shape {x.shape}")
    return x


def _add2d(t: Tensor) -> Tensor:
    return reshape(t, t.shape + (1, 1))


def inv(a) -> Tensor:
    """The inverse; d inv = −inv(a)ᵀ · g · inv(a)ᵀ."""
    a = square_matrices(a, "inv")
    out = _xp(a.data).linalg.inv(a.data)

    def bwd(g, o, need):
        ot = T(o)
        return (-matmul(matmul(ot, g), ot),)

    return record(out, (a,), bwd, "inv")


def det(a) -> Tensor:
    """The determinant; d det = g · det · inv(a)ᵀ."""
    a = square_matrices(a, "det")
    out = _xp(a.data).linalg.det(a.data)
    out = _xp(a.data).asarray(out, dtype=a.dtype)

    def bwd(g, o, need):
        return (_add2d(g * o) * T(inv(a)),)

    return record(out, (a,), bwd, "det")


def slogdet(a) -> SlogdetResult:
    """``(sign, logabsdet)`` of the determinant, a named pair; ``sign`` is a constant, d logabsdet = g · inv(a)ᵀ."""
    a = square_matrices(a, "slogdet")
    xp = _xp(a.data)
    sign, logdet = xp.linalg.slogdet(a.data)
    logdet = xp.asarray(logdet, dtype=a.dtype)

    def bwd(g, o, need):
        return (_add2d(g) * T(inv(a)),)

    return SlogdetResult(Tensor._make(xp.asarray(sign, dtype=a.dtype)), record(logdet, (a,), bwd, "slogdet"))


def solve(a, b) -> Tensor:
    """x with a · x = b; ``b`` is a vector (1-d) or matrices (NumPy 2's rule)."""
    a = square_matrices(a, "solve")
    b = to_float(unary(b, "solve"))
    if a.dtype != b.dtype:
        dt = np.result_type(a.dtype, b.dtype)
        a, b = (t if t.dtype == dt else t.astype(dt) for t in (a, b))
    vec = b.ndim == 1
    n = a.shape[-1]
    if (b.shape[0] if vec else b.shape[-2]) != n:
        raise ValueError(
            f"solve: a of shape {a.shape} and b of shape {b.shape} do not fit: b needs {n} rows "
            "(a vector b is 1-d; otherwise b holds matrices)"
        )
    out = _xp(a.data).linalg.solve(a.data, b.data)

    def bwd(g, o, need):
        if vec:  # one column per batch entry
            gcol = solve(T(a), expand_dims(g, -1))
            ga = -(gcol * expand_dims(o, -2)) if need[0] else None
            gb = reshape(gcol, gcol.shape[:-1])
        else:
            gb = solve(T(a), g)
            ga = -matmul(gb, T(o)) if need[0] else None
        return (_sum_to(ga, a) if need[0] else None), (_sum_to(gb, b) if need[1] else None)

    return record(out, (a, b), bwd, "solve")


def _sum_to(g: Tensor, x: Tensor) -> Tensor:
    from .base import unbroadcast

    return unbroadcast(g, x)


def pinv(a) -> Tensor:
    """The Moore–Penrose pseudo-inverse (its gradient assumes a constant rank)."""
    a = matrices(a, "pinv")
    out = _xp(a.data).linalg.pinv(a.data)

    def bwd(g, o, need):
        xp = _xp(a.data)
        m, n = a.shape[-2], a.shape[-1]
        eye_m = Tensor._make(xp.eye(m, dtype=a.dtype))
        eye_n = Tensor._make(xp.eye(n, dtype=a.dtype))
        return (
            T(
                -matmul(matmul(o, T(g)), o)
                + matmul(matmul(matmul(o, T(o)), g), eye_m - matmul(a, o))
                + matmul(matmul(matmul(eye_n - matmul(o, a), g), T(o)), o)
            ),
        )

    return record(out, (a,), bwd, "pinv")


def matrix_power(a, n: int) -> Tensor:
    """``a`` multiplied by itself ``n`` times (by squaring); a negative ``n`` powers the inverse."""
    a = square_matrices(a, "matrix_power")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"matrix_power: the exponent must be an int, got {n!r}")
    n = int(n)
    if n == 0:
        xp = _xp(a.data)
        return Tensor._make(xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape).copy())
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


# -- norms ----------------------------------------------------------------------------------------


def norm(x, ord=None, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A002
    """NumPy's ``linalg.norm``: vector norms (``ord`` a number, ``inf``, ``-inf``, 0) along one
    axis, matrix norms (``'fro'``, ``'nuc'``, 1, -1, 2, -2, ``inf``, ``-inf``) over two, and the
    2-norm of all elements when ``axis`` and ``ord`` are None."""
    from .math import abs
    from .reduce import max, min, sum

    x = to_float(unary(x, "norm"))
    if axis is None:
        if ord is None:
            return _keep(_two_norm(x, tuple(range(x.ndim))), x, tuple(range(x.ndim)), keepdims)
        if x.ndim == 1:
            axis = (0,)
        elif x.ndim == 2:
            axis = (0, 1)
        else:
            raise ValueError(f"norm: ord={ord!r} needs a 1-d or 2-d tensor or an axis, got shape {x.shape}")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    given = axes
    axes = tuple(normalize_axis(a, x.ndim)[0] for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"norm: axis {given!r} repeats an axis of shape {x.shape}")
    if len(axes) == 1:
        (ax,) = axes
        if ord is None or ord == 2:
            out = _two_norm(x, axes)
        elif ord == np.inf:
            out = max(abs(x), axis=ax)
        elif ord == -np.inf:
            out = min(abs(x), axis=ax)
        elif ord == 0:
            return _keep(Tensor._make((x.data != 0).sum(axis=ax).astype(x.dtype)), x, axes, keepdims)
        elif ord == 1:
            out = sum(abs(x), axis=ax)
        elif isinstance(ord, str):
            raise ValueError(f"norm: ord={ord!r} is a matrix norm; a vector norm takes a number")
        else:
            p = float(ord)
            out = sum(abs(x) ** p, axis=ax) ** (1.0 / p)
        return _keep(out, x, axes, keepdims)
    if len(axes) != 2:
        raise ValueError(f"norm: axis must name 1 or 2 axes, got {given!r}")
    r, c = axes
    if ord is None or ord == "fro":
        out = _two_norm(x, axes)
    elif ord == "nuc":
        out = sum(_singular_values(x, r, c), axis=-1)
    elif ord in (2, -2):
        s = _singular_values(x, r, c)
        out = max(s, axis=-1) if ord == 2 else min(s, axis=-1)
    elif ord in (1, -1):
        col = sum(abs(x), axis=r)
        out = (max if ord == 1 else min)(col, axis=c - 1 if c > r else c)
    elif ord in (np.inf, -np.inf):
        row = sum(abs(x), axis=c)
        out = (max if ord == np.inf else min)(row, axis=r - 1 if r > c else r)
    else:
        raise ValueError(f"norm: invalid ord={ord!r} for a matrix norm")
    return _keep(out, x, axes, keepdims)


def reduction_norm(x, ord=None, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A002
    """``gg.norm``, a reduction: with ``axis=None`` the vector norm of all elements, along one axis
    a vector norm, over several the Frobenius norm for ``ord`` None or 2 (sqrt(Σ x²), with
    gradient 0 at 0). Other ``ord`` values over two given axes, and ``ord=2`` over two given axes
    (the largest singular value), are NumPy's matrix norms (:func:`norm`, which follows NumPy for
    ``axis=None`` too)."""
    from .reduce import norm as two_norm

    two_axes = axis is not None and not isinstance(axis, (int, np.integer)) and len(tuple(axis)) == 2
    if ord in (None, "euclidean", "fro") or ord == 2 and not two_axes:
        return two_norm(x, None if ord == "euclidean" else ord, axis, keepdims)
    if axis is None:
        x = unary(x, "norm")
        out = norm(reshape(x, (-1,)), ord, 0)
        return reshape(out, (1,) * x.ndim) if keepdims else out
    return norm(x, ord, axis, keepdims)


def _two_norm(x: Tensor, axes) -> Tensor:
    from .reduce import norm as _norm

    return _norm(x, axis=axes)


def _keep(out: Tensor, x: Tensor, axes, keepdims: bool) -> Tensor:
    if not keepdims:
        return out
    return reshape(out, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))


def _singular_values(x: Tensor, r: int, c: int) -> Tensor:
    from .arrange import moveaxis
    from .decompose import svd

    return svd(moveaxis(x, (r, c), (-2, -1)), compute_uv=False)



def vector_norm(x, ord=2, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A002
    """The array API's vector norm: of all elements when ``axis`` is None, else along ``axis``
    (one axis, or several taken together as one vector)."""
    x = to_float(unary(x, "vector_norm"))
    if axis is None:
        out = norm(reshape(x, (-1,)), ord, 0)
        return reshape(out, (1,) * x.ndim) if keepdims else out
    axes = normalize_axis(axis, x.ndim)
    if len(axes) == 1:
        return norm(x, ord, axes[0], keepdims)
    from .arrange import moveaxis

    rest = [n for i, n in enumerate(x.shape) if i not in axes]
    moved = moveaxis(x, axes, tuple(range(-len(axes), 0)))
    out = norm(reshape(moved, tuple(rest) + (-1,)), ord, -1)
    return _keep(out, x, axes, keepdims) if keepdims else out


def matrix_norm(x, ord="fro", keepdims: bool = False) -> Tensor:  # noqa: A002
    """The array API's matrix norm of the last two axes."""
    x = matrices(x, "matrix_norm")
    return norm(x, ord, (-2, -1), keepdims)


def vecdot(a, b, axis: int = -1) -> Tensor:
    """The dot product of vectors along ``axis``, broadcasting the other axes."""
    from .math import multiply
    from .reduce import sum

    return sum(multiply(a, b), axis=axis)


def multi_dot(arrays) -> Tensor:
    """The product of a chain of matrices (the first may be a vector, as may the last), multiplied
    in the order that costs the fewest scalar products."""
    ts = [to_float(unary(a, "multi_dot")) for a in arrays]
    if len(ts) < 2:
        raise ValueError(f"multi_dot: needs at least two arrays, got {len(ts)}")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = reshape(ts[0], (1, -1))
    if last_vec:
        ts[-1] = reshape(ts[-1], (-1, 1))
    for t in ts:
        if t.ndim != 2:
            raise ValueError(f"multi_dot: needs 2-d arrays (1-d at the ends), got shape {t.shape}")
    dims = [ts[0].shape[0]] + [t.shape[1] for t in ts]
    n = len(ts)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def chain(i, j):
        if i == j:
            return ts[i]
        k = split[i][j]
        return matmul(chain(i, k), chain(k + 1, j))

    out = chain(0, n - 1)
    if first_vec and last_vec:
        return reshape(out, ())
    if first_vec:
        return reshape(out, (out.shape[1],))
    if last_vec:
        return reshape(out, (out.shape[0],))
    return out
