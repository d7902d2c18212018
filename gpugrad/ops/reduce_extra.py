"""More reductions under NumPy's names: ``prod``, ``cumsum``, ``cumprod``, ``var``, ``std``, with
``axis=None|int|tuple`` and ``keepdims`` as :mod:`gpugrad.ops.reduce`."""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, record, to_float, unary
from .reduce import _expand, mean, sum
from .shape import getitem, reshape, transpose


def _xp(d):
    return backend.get_array_module(d)


def _no_zeros(d) -> bool:
    """Whether array ``d`` holds no zero; False for an array traced by ``gg.jit`` (its values are
    not known when the step is recorded, so the exact path for zeros is taken)."""
    if getattr(d, "gg_trace", None) is not None:
        return False
    return not bool((d == 0).any())


def prod(x, axis=None, keepdims: bool = False) -> Tensor:
    """The product of the elements along ``axis``. The gradient is out/x; where ``x`` holds zeros
    it is the product of the other elements, formed exactly (to every order) from an n×n layout
    of each group of n elements."""
    x = unary(x, "prod")
    axes = normalize_axis(axis, x.ndim)
    out = x.data.prod(axis=axes, keepdims=keepdims)
    if not hasattr(out, "shape"):
        out = _xp(x.data).asarray(out)

    def bwd(g, o, need):
        if _no_zeros(x.data):
            return (_expand(g, x, axes, keepdims) * _expand(o, x, axes, keepdims) / x,)
        return (_expand(g, x, axes, keepdims) * _prod_of_others(x, axes),)

    return record(out, (x,), bwd, "prod")


def _prod_of_others(x: Tensor, axes) -> Tensor:
    """For each element, the product of the other elements of its reduction group (exact with
    zeros): the group is laid out n times with a 1 in place of the element, then multiplied."""
    from .math import where

    keep = [i for i in range(x.ndim) if i not in axes]
    perm = keep + list(axes)
    moved = transpose(x, perm)
    lead = moved.shape[: len(keep)]
    n = 1
    for a in axes:
        n *= x.shape[a]
    flat = reshape(moved, lead + (n,))
    xp = _xp(x.data)
    eye = Tensor._make(xp.eye(n, dtype=bool))
    grid = where(eye, 1.0, reshape(flat, lead + (1, n)))  # (..., n, n): row i holds the group, 1 at i
    others = prod(grid, axis=-1)  # (..., n)
    inv = [0] * x.ndim
    for i, p in enumerate(perm):
        inv[p] = i
    return transpose(reshape(others, moved.shape), inv)


def _flip(x: Tensor, axis: int) -> Tensor:
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(None, None, -1)
    return getitem(x, tuple(idx))


def _one_axis(x: Tensor, axis, op: str):
    """``x`` and the axis of a scan: ``axis=None`` scans the flattened tensor."""
    if axis is None:
        return reshape(x, (-1,)), 0
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"{op}: axis must be None or an int, got {axis!r}")
    if x.ndim == 0:
        x = reshape(x, (1,))
    return x, normalize_axis(axis, x.ndim)[0]


def cumsum(x, axis=None) -> Tensor:
    """Running sums along ``axis`` (of the flattened tensor when it is None); the gradient is the
    running sum of the upstream gradient taken from the end."""
    x, ax = _one_axis(unary(x, "cumsum"), axis, "cumsum")
    out = _xp(x.data).cumsum(x.data, axis=ax)

    def bwd(g, o, need):
        return (_flip(cumsum(_flip(g, ax), ax), ax),)

    return record(out, (x,), bwd, "cumsum")


def cumprod(x, axis=None) -> Tensor:
    """Running products along ``axis`` (of the flattened tensor when it is None). The gradient is
    the running sum of g·out from the end, over x; where ``x`` holds zeros it is formed exactly
    as a product over prefixes instead (the work then grows as n² along the axis)."""
    x, ax = _one_axis(unary(x, "cumprod"), axis, "cumprod")
    xp = _xp(x.data)
    if x.data.dtype.kind != "f" or _no_zeros(x.data):
        out = xp.cumprod(x.data, axis=ax)

        def bwd(g, o, need):
            return (_flip(cumsum(_flip(g * o, ax), ax), ax) / x,)

        return record(out, (x,), bwd, "cumprod")
    return _cumprod_by_prefixes(x, ax)


def _cumprod_by_prefixes(x: Tensor, ax: int) -> Tensor:
    from .math import where

    n = x.shape[ax]
    xp = _xp(x.data)
    # prefix[i, j] = x_j where j <= i, else 1; its product over j is the i-th running product
    lower = Tensor._make(xp.tril(xp.ones((n, n), dtype=bool)))
    xm = transpose(x, [i for i in range(x.ndim) if i != ax] + [ax])
    grid = where(lower, reshape(xm, xm.shape[:-1] + (1, n)), 1.0)
    out = prod(grid, axis=-1)
    perm = list(range(x.ndim - 1))
    perm.insert(ax, x.ndim - 1)
    return transpose(out, perm)


def var(x, axis=None, ddof: int = 0, keepdims: bool = False, *, correction=None, unbiased=None) -> Tensor:
    """The variance: mean((x − mean(x))²) · n / (n − ddof). NumPy's default ``ddof=0``
    (PyTorch's ``correction=``/``unbiased=`` are taken too)."""
    x = to_float(unary(x, "var"))
    ddof = _ddof(ddof, correction, unbiased)
    axes = normalize_axis(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    d = x - mean(x, axis=axes, keepdims=True)
    s = sum(d * d, axis=axes, keepdims=keepdims)
    return s * (1.0 / (n - ddof)) if n - ddof > 0 else s * float("nan")


def std(x, axis=None, ddof: int = 0, keepdims: bool = False, *, correction=None, unbiased=None) -> Tensor:
    """The standard deviation, sqrt(var) (NumPy's default ``ddof=0``)."""
    from .math import sqrt

    return sqrt(var(x, axis, ddof, keepdims, correction=correction, unbiased=unbiased))


def _ddof(ddof, correction, unbiased):
    if correction is not None:
        return correction
    if unbiased is not None:
        return 1 if unbiased else 0
    return ddof


__all__ = ["prod", "cumsum", "cumprod", "var", "std"]
