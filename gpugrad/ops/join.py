"""NumPy's joining and splitting functions: ``concatenate``, ``vstack``, ``hstack``, ``dstack``,
``column_stack``, ``append``, ``split``, ``array_split`` and friends, and the ``r_`` and ``c_``
builders; all made of ``concat`` and slicing, so their gradients differentiate again."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .arrange import _axis, atleast_1d, atleast_2d, atleast_3d, ravel
from .base import holds_tensor, unary
from .shape import concat, getitem, reshape


def _seq(values, op: str):
    if isinstance(values, Tensor):
        return [values[i] for i in range(values.shape[0])] if values.ndim else [values]
    ts = [unary(v, op) for v in values]
    if not ts:
        raise ValueError(f"{op}: needs at least one array")
    return ts


def concatenate(values, axis=0) -> Tensor:
    """NumPy's ``concatenate``; ``axis=None`` joins the flattened tensors."""
    ts = _seq(values, "concatenate")
    if axis is None:
        return concat([ravel(t) for t in ts], 0)
    return concat(ts, axis)


def vstack(values) -> Tensor:
    return concat([atleast_2d(t) for t in _seq(values, "vstack")], 0)


def hstack(values) -> Tensor:
    ts = [atleast_1d(t) for t in _seq(values, "hstack")]
    return concat(ts, 0 if ts[0].ndim == 1 else 1)


def dstack(values) -> Tensor:
    return concat([atleast_3d(t) for t in _seq(values, "dstack")], 2)


def column_stack(values) -> Tensor:
    """1-d tensors become the columns of a 2-d one; 2-d tensors are joined along axis 1."""
    ts = []
    for t in _seq(values, "column_stack"):
        ts.append(reshape(t, (t.shape[0], 1)) if t.ndim == 1 else atleast_2d(t))
    return concat(ts, 1)


row_stack = vstack


def append(arr, values, axis=None) -> Tensor:
    """``arr`` with ``values`` joined at the end (both flattened when ``axis`` is None)."""
    a = unary(arr, "append")
    v = unary(values, "append")
    if axis is None:
        return concat([ravel(a), ravel(v)], 0)
    return concat([a, v], axis)


def array_split(x, indices_or_sections, axis: int = 0) -> list:
    """Split into pieces along ``axis``: ``n`` nearly equal pieces (the first ones one longer),
    or at the given indices."""
    x = unary(x, "array_split")
    ax = _axis(axis, x.ndim)
    n = x.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"array_split: the number of sections must be positive, got {k}")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(lo, hi)
        out.append(getitem(x, tuple(idx)))
    return out


def split(x, indices_or_sections, axis: int = 0) -> list:
    """As :func:`array_split`, but ``n`` sections must divide the axis evenly."""
    x = unary(x, "split")
    if isinstance(indices_or_sections, (int, np.integer)):
        ax = _axis(axis, x.ndim)
        if indices_or_sections <= 0 or x.shape[ax] % int(indices_or_sections):
            raise ValueError(
                f"split: axis {ax} of length {x.shape[ax]} does not divide into {indices_or_sections} equal "
                "sections; use array_split"
            )
    return array_split(x, indices_or_sections, axis)


def vsplit(x, indices_or_sections) -> list:
    x = unary(x, "vsplit")
    if x.ndim < 2:
        raise ValueError(f"vsplit: needs at least 2 dimensions, got shape {x.shape}")
    return split(x, indices_or_sections, 0)


def hsplit(x, indices_or_sections) -> list:
    x = unary(x, "hsplit")
    if x.ndim < 1:
        raise ValueError("hsplit: needs at least 1 dimension, got a 0-d tensor")
    return split(x, indices_or_sections, 1 if x.ndim > 1 else 0)


def dsplit(x, indices_or_sections) -> list:
    x = unary(x, "dsplit")
    if x.ndim < 3:
        raise ValueError(f"dsplit: needs at least 3 dimensions, got shape {x.shape}")
    return split(x, indices_or_sections, 2)


class _Builder:
    """``r_[...]`` and ``c_[...]``: tensors, numbers, lists and slices (``a:b:step`` as ``arange``,
    ``a:b:nj`` as ``linspace``) joined along the first axis (``r_``) or as columns (``c_``)."""

    def __init__(self, columns: bool):
        self.columns = columns

    def __getitem__(self, key) -> Tensor:
        items = key if isinstance(key, tuple) else (key,)
        like = next((i for i in items if isinstance(i, Tensor)), None)
        parts = []
        for item in items:
            if isinstance(item, str):
                raise ValueError(f"{'c_' if self.columns else 'r_'}: string directives are not supported, got {item!r}")
            if isinstance(item, slice):
                item = _slice_values(item)
            if like is not None and not isinstance(item, Tensor) and not _holds(item):
                item = Tensor(item, device=like.device)  # numbers and arrays join the tensors' device
            parts.append(atleast_1d(unary(item, "r_")))
        if self.columns:
            return column_stack(parts) if all(p.ndim <= 2 for p in parts) else concat(parts, -1)
        return concat(parts, 0)


def _holds(item) -> bool:
    return isinstance(item, (list, tuple)) and holds_tensor(item)


def _slice_values(s: slice) -> np.ndarray:
    start = 0 if s.start is None else s.start
    step = 1 if s.step is None else s.step
    if isinstance(step, complex):
        return np.linspace(start, s.stop, int(abs(step)))
    return np.arange(start, s.stop, step)


r_ = _Builder(columns=False)
c_ = _Builder(columns=True)
