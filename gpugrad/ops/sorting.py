"""Sorting: ``sort``, ``partition``, ``argsort``, ``argpartition`` and ``take_along_axis``. The
values are gathered with advanced indexing, so the gradient of each goes back to its place."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .arrange import _axis, ravel
from .base import unary
from .shape import getitem


def _xp(d):
    return backend.get_array_module(d)


def _along(x: Tensor, idx, ax: int):
    """The full advanced index that takes ``idx`` (an integer array of ``x``'s rank) along ``ax``."""
    xp = _xp(x.data)
    full = []
    for i, n in enumerate(idx.shape):
        if i == ax:
            full.append(idx)
        else:
            shape = [1] * idx.ndim
            shape[i] = n
            full.append(xp.arange(n).reshape(shape))
    return tuple(full)


def take_along_axis(x, indices, axis: int) -> Tensor:
    """``out[..., i, ...] = x[..., indices[..., i, ...], ...]`` along ``axis``."""
    x = unary(x, "take_along_axis")
    idx = indices.data if isinstance(indices, Tensor) else _xp(x.data).asarray(indices)
    if idx.ndim != x.ndim:
        raise ValueError(f"take_along_axis: indices of shape {idx.shape} must have the rank of shape {x.shape}")
    ax = _axis(axis, x.ndim)
    return getitem(x, _along(x, idx, ax))


def _argsort(d, ax: int):
    """Stable sorting indices (CuPy's sort is stable and takes no ``kind``)."""
    if isinstance(d, np.ndarray):
        return np.argsort(d, axis=ax, kind="stable")
    return _xp(d).argsort(d, axis=ax)


def argsort(x, axis=-1) -> Tensor:
    """The indices that sort ``x`` along ``axis`` (stable; NaN last): integers, not differentiable."""
    x = unary(x, "argsort")
    if axis is None:
        x, axis = ravel(x), 0
    if x.ndim == 0:
        return Tensor._make(_xp(x.data).zeros((), dtype=np.int64))
    return Tensor._make(_argsort(x.data, _axis(axis, x.ndim)))


def sort(x, axis=-1) -> Tensor:
    """``x`` sorted along ``axis`` (flattened when None); the gradient goes back to each element's
    place. NaN sorts last, as in NumPy."""
    x = unary(x, "sort")
    if axis is None:
        x, axis = ravel(x), 0
    if x.ndim == 0:
        return x
    ax = _axis(axis, x.ndim)
    return getitem(x, _along(x, _argsort(x.data, ax), ax))


def _kth_axis(x: Tensor, kth, axis, op: str):
    if axis is None:
        x, axis = ravel(x), 0
    ax = _axis(axis, x.ndim)
    n = x.shape[ax]
    ks = [kth] if isinstance(kth, int) else list(kth)
    for k in ks:
        if not -n <= int(k) < n:
            raise ValueError(f"{op}: kth {kth!r} is out of range for axis {ax} of length {n}")
    return x, ax


def argpartition(x, kth, axis=-1) -> Tensor:
    """Indices that partition ``x`` around its ``kth`` element: integers, not differentiable."""
    x, ax = _kth_axis(unary(x, "argpartition"), kth, axis, "argpartition")
    return Tensor._make(_xp(x.data).argpartition(x.data, kth, axis=ax))


def partition(x, kth, axis=-1) -> Tensor:
    """``x`` with its ``kth`` element in sorted place, smaller ones before and larger after; the
    gradient goes back to each element's place."""
    x, ax = _kth_axis(unary(x, "partition"), kth, axis, "partition")
    idx = _xp(x.data).argpartition(x.data, kth, axis=ax)
    return getitem(x, _along(x, idx, ax))
