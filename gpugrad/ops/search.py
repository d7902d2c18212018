"""``argmax`` and ``argmin``: integer indices, not differentiable (constants to every graph)."""

from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, unary


def _arg(name: str, x, axis, keepdims: bool) -> Tensor:
    x = unary(x)
    d = x.data
    xp = backend.get_array_module(d)
    if axis is not None:
        if isinstance(axis, (tuple, list)):
            raise TypeError(f"{name}: axis must be None or an int, got {axis!r}")
        (axis,) = normalize_axis(int(axis), d.ndim) or (0,)
    if d.size == 0:
        raise ValueError(f"{name}: attempt to get {name} of an empty tensor of shape {tuple(d.shape)}")
    fn = xp.argmax if name == "argmax" else xp.argmin
    out = fn(d, axis=axis)
    if keepdims:
        out = out.reshape((1,) * d.ndim if axis is None else d.shape[:axis] + (1,) + d.shape[axis + 1 :])
    return Tensor._make(xp.asarray(out, dtype="int64"))


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the largest element (of the flattened tensor when ``axis`` is None); NaN counts as largest."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the smallest element (of the flattened tensor when ``axis`` is None); NaN counts as smallest."""
    return _arg("argmin", x, axis, keepdims)
