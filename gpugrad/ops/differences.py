"""Finite differences under NumPy's names: ``diff`` and ``gradient``, made of slices and
arithmetic, so their gradients differentiate again."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .arrange import _axis
from .base import normalize_axis, unary
from .shape import concat, getitem


def _take(x: Tensor, ax: int, sl: slice) -> Tensor:
    idx = [slice(None)] * x.ndim
    idx[ax] = sl
    return getitem(x, tuple(idx))


def diff(x, n: int = 1, axis: int = -1) -> Tensor:
    """The ``n``-th difference along ``axis``: ``out[i] = x[i + 1] − x[i]``, applied ``n`` times."""
    x = unary(x, "diff")
    if x.ndim == 0:
        raise ValueError("diff: needs at least 1 dimension, got a 0-d tensor")
    if n < 0:
        raise ValueError(f"diff: order must be non-negative, got {n}")
    ax = _axis(axis, x.ndim)
    for _ in range(n):
        x = _take(x, ax, slice(1, None)) - _take(x, ax, slice(None, -1))
    return x


def gradient(f, *varargs, axis=None, edge_order: int = 1):
    """NumPy's ``gradient`` with uniform spacing: central differences inside, one-sided
    differences (``edge_order`` 1 or 2) at the ends; one tensor per axis (a tensor for one axis)."""
    f = unary(f, "gradient")
    axes = normalize_axis(axis, f.ndim)
    if axis is not None and isinstance(axis, (int, np.integer)):
        axes = (_axis(axis, f.ndim),)
    if not varargs:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [float(varargs[0])] * len(axes)
    elif len(varargs) == len(axes) and all(np.ndim(v) == 0 for v in varargs):
        spacing = [float(v) for v in varargs]
    else:
        raise ValueError(
            "gradient: spacing must be one number or one number per axis (coordinate arrays are not supported)"
        )
    if edge_order not in (1, 2):
        raise ValueError(f"gradient: edge_order must be 1 or 2, got {edge_order}")
    out = []
    for ax, h in zip(axes, spacing):
        n = f.shape[ax]
        if n < edge_order + 1:
            raise ValueError(
                f"gradient: axis {ax} of shape {f.shape} is too short for edge_order={edge_order} (needs "
                f"{edge_order + 1} points)"
            )
        mid = (_take(f, ax, slice(2, None)) - _take(f, ax, slice(None, -2))) * (0.5 / h)
        if edge_order == 1:
            first = (_take(f, ax, slice(1, 2)) - _take(f, ax, slice(0, 1))) * (1.0 / h)
            last = (_take(f, ax, slice(-1, None)) - _take(f, ax, slice(-2, -1))) * (1.0 / h)
        else:
            first = (
                -1.5 * _take(f, ax, slice(0, 1)) + 2.0 * _take(f, ax, slice(1, 2)) - 0.5 * _take(f, ax, slice(2, 3))
            ) * (1.0 / h)
            last = (
                0.5 * _take(f, ax, slice(-3, -2))
                - 2.0 * _take(f, ax, slice(-2, -1))
                + 1.5 * _take(f, ax, slice(-1, None))
            ) * (1.0 / h)
        out.append(concat([first, mid, last], ax))
    return out[0] if len(out) == 1 else out
