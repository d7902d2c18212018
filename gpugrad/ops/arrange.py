"""NumPy's array-rearranging functions: flips, rolls, repeats, tiles, the stack and split family,
diagonals, triangles, ``sort`` and ``pad``. Each is built from recorded shape ops (``reshape``,
``transpose``, ``getitem``, ``concat``, ``broadcast_to``), so their gradients move numbers back
and differentiate again."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, record, unary
from .shape import broadcast_to, concat, getitem, reshape, scatter_add, transpose


def _xp(d):
    return backend.get_array_module(d)


def _axis(axis, ndim: int) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    return normalize_axis(int(axis), ndim)[0] if ndim else 0


# -- views of one tensor ------------------------------------------------------------------------


def ravel(x) -> Tensor:
    """The elements as a 1-d tensor (row-major)."""
    return reshape(unary(x, "ravel"), (-1,))


flatten = ravel


def atleast_1d(x) -> Tensor:
    x = unary(x, "atleast_1d")
    return reshape(x, (1,)) if x.ndim == 0 else x


def atleast_2d(x) -> Tensor:
    x = unary(x, "atleast_2d")
    return reshape(x, (1,) * (2 - x.ndim) + x.shape) if x.ndim < 2 else x


def atleast_3d(x) -> Tensor:
    """As NumPy: () → (1, 1, 1), (n,) → (1, n, 1), (m, n) → (m, n, 1)."""
    x = unary(x, "atleast_3d")
    if x.ndim == 0:
        return reshape(x, (1, 1, 1))
    if x.ndim == 1:
        return reshape(x, (1, x.shape[0], 1))
    if x.ndim == 2:
        return reshape(x, x.shape + (1,))
    return x


def moveaxis(x, source, destination) -> Tensor:
    """Move axes ``source`` to positions ``destination``, keeping the order of the others."""
    x = unary(x, "moveaxis")
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} differ in length")
    src = [_axis(a, x.ndim) for a in src]
    dst = [_axis(a, x.ndim) for a in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"moveaxis: repeated axis in source {source!r} or destination {destination!r}")
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    x = unary(x, "swapaxes")
    a, b = _axis(axis1, x.ndim), _axis(axis2, x.ndim)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def flip(x, axis=None) -> Tensor:
    """Reverse the order of elements along ``axis`` (every axis when None)."""
    x = unary(x, "flip")
    axes = normalize_axis(axis, x.ndim)
    idx = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))
    return getitem(x, idx)


def fliplr(x) -> Tensor:
    x = unary(x, "fliplr")
    if x.ndim < 2:
        raise ValueError(f"fliplr: needs at least 2 dimensions, got shape {x.shape}")
    return flip(x, 1)


def flipud(x) -> Tensor:
    x = unary(x, "flipud")
    if x.ndim < 1:
        raise ValueError(f"flipud: needs at least 1 dimension, got shape {x.shape}")
    return flip(x, 0)


def rot90(x, k: int = 1, axes=(0, 1)) -> Tensor:
    """Rotate by 90° ``k`` times in the plane of ``axes`` (from the first axis towards the second)."""
    x = unary(x, "rot90")
    if len(axes) != 2:
        raise ValueError(f"rot90: axes must name 2 axes, got {axes!r}")
    a, b = _axis(axes[0], x.ndim), _axis(axes[1], x.ndim)
    if a == b:
        raise ValueError(f"rot90: axes {axes!r} name the same axis")
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, a), b)
    if k == 1:
        return swapaxes(flip(x, b), a, b)
    return flip(swapaxes(x, a, b), b)


def roll(x, shift, axis=None) -> Tensor:
    """Shift elements along ``axis`` cyclically (of the flattened tensor when None)."""
    x = unary(x, "roll")
    if axis is None:
        return reshape(roll(reshape(x, (-1,)), shift, 0), x.shape)
    shifts = (shift,) if isinstance(shift, (int, np.integer)) else tuple(shift)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    if len(axes) == 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shift {shift!r} and axis {axis!r} differ in length")
    axes = tuple(_axis(a, x.ndim) for a in axes)
    out = _xp(x.data).roll(x.data, shifts, axes)
    back = tuple(-int(s) for s in shifts)

    def bwd(g, o, need):
        return (roll(g, back, axes),)

    return record(out, (x,), bwd, "roll")


def repeat(x, repeats, axis=None) -> Tensor:
    """Repeat each element ``repeats`` times along ``axis`` (of the flattened tensor when None);
    ``repeats`` is an int or one count per element."""
    x = unary(x, "repeat")
    if axis is None:
        x, ax = reshape(x, (-1,)), 0
    else:
        ax = _axis(axis, x.ndim)
    n = x.shape[ax] if x.ndim else 1
    reps = np.asarray(repeats.numpy() if isinstance(repeats, Tensor) else repeats)
    if reps.dtype.kind not in "iu" or reps.ndim > 1 or (reps.ndim == 1 and reps.size not in (1, n)) or (reps < 0).any():
        raise ValueError(
            f"repeat: repeats must be a non-negative int or one per element ({n}) along axis {axis}, got {repeats!r}"
        )
    src = np.repeat(np.arange(n), reps)
    idx = backend.to_device(src, x.device) if x.device != "cpu" else src
    return getitem(x, (slice(None),) * ax + (idx,))


def tile(x, reps) -> Tensor:
    """``x`` repeated ``reps`` times along each axis (NumPy's rules for differing lengths)."""
    x = unary(x, "tile")
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: reps must be non-negative, got {reps!r}")
    nd = max(len(reps), x.ndim)
    reps = (1,) * (nd - len(reps)) + reps
    shape = (1,) * (nd - x.ndim) + x.shape
    inter = tuple(v for pair in zip((1,) * nd, shape) for v in pair)  # (1, s0, 1, s1, ...)
    big = tuple(v for pair in zip(reps, shape) for v in pair)  # (r0, s0, r1, s1, ...)
    out = broadcast_to(reshape(x, inter), big)
    return reshape(out, tuple(r * s for r, s in zip(reps, shape)))


# -- joining and splitting -------------------------------------------------------------------------


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


# -- diagonals and triangles ---------------------------------------------------------------------


def _diag_index(n: int, m: int, k: int):
    """Row and column indices of diagonal ``k`` of an n×m matrix."""
    if k >= 0:
        count = max(0, min(n, m - k))
        rows = np.arange(count)
        return rows, rows + k
    count = max(0, min(n + k, m))
    cols = np.arange(count)
    return cols - k, cols


def _on(arr, x: Tensor):
    return arr if x.device == "cpu" else backend.to_device(arr, x.device)


def diagonal(x, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The diagonal ``offset`` of the planes of ``axis1`` and ``axis2``, as the last axis."""
    x = unary(x, "diagonal")
    if x.ndim < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {x.shape}")
    a, b = _axis(axis1, x.ndim), _axis(axis2, x.ndim)
    if a == b:
        raise ValueError(f"diagonal: axis1 and axis2 name the same axis ({axis1}, {axis2})")
    moved = transpose(x, [i for i in range(x.ndim) if i not in (a, b)] + [a, b])
    rows, cols = _diag_index(x.shape[a], x.shape[b], int(offset))
    return getitem(moved, (Ellipsis, _on(rows, x), _on(cols, x)))


def trace(x, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The sum of a diagonal (of each plane of ``axis1`` and ``axis2``)."""
    from .reduce import sum

    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


def diag(v, k: int = 0) -> Tensor:
    """A 1-d ``v`` as the diagonal ``k`` of a square matrix; a 2-d ``v``'s diagonal ``k``."""
    v = unary(v, "diag")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError(f"diag: takes a 1-d or 2-d tensor, got shape {v.shape}")
    n = v.shape[0] + abs(int(k))
    rows, cols = _diag_index(n, n, int(k))
    return scatter_add(v, (_on(rows, v), _on(cols, v)), (n, n))


def diagflat(v, k: int = 0) -> Tensor:
    return diag(ravel(v), k)


def _triangle(name, fn):
    def op(x, k: int = 0) -> Tensor:
        from .math import where

        x = unary(x, name)
        if x.ndim < 2:
            raise ValueError(f"{name}: needs at least 2 dimensions, got shape {x.shape}")
        xp = _xp(x.data)
        keep = fn(xp.ones(x.shape[-2:], dtype=bool), int(k))
        return where(Tensor._make(keep), x, 0)

    op.__name__ = name
    return op


triu = _triangle("triu", lambda m, k: backend.get_array_module(m).triu(m, k))
tril = _triangle("tril", lambda m, k: backend.get_array_module(m).tril(m, k))


# -- sorting, padding, choosing -------------------------------------------------------------------


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


def argsort(x, axis=-1) -> Tensor:
    """The indices that sort ``x`` along ``axis`` (stable): integers, not differentiable."""
    x = unary(x, "argsort")
    if axis is None:
        x, axis = ravel(x), 0
    return Tensor._make(_xp(x.data).argsort(x.data, axis=_axis(axis, x.ndim) if x.ndim else 0))


def sort(x, axis=-1) -> Tensor:
    """``x`` sorted along ``axis`` (flattened when None); the gradient goes back to each element's
    place. NaN sorts last, as in NumPy."""
    x = unary(x, "sort")
    if axis is None:
        x, axis = ravel(x), 0
    if x.ndim == 0:
        return x
    ax = _axis(axis, x.ndim)
    idx = _xp(x.data).argsort(x.data, axis=ax, kind="stable") if x.device == "cpu" else _xp(x.data).argsort(
        x.data, axis=ax
    )
    return getitem(x, _along(x, idx, ax))


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad(x, pad_width, mode: str = "constant", constant_values=0) -> Tensor:
    """NumPy's ``pad`` with modes ``constant``, ``edge``, ``reflect``, ``symmetric`` and ``wrap``;
    the gradient of a padded element goes to the element it copies."""
    x = unary(x, "pad")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2)).tolist()
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor of shape {x.shape}") from None
    if any(w < 0 for pair in widths for w in pair):
        raise ValueError(f"pad: pad_width must be non-negative, got {pad_width!r}")
    if mode == "constant":
        xp = _xp(x.data)
        c = constant_values
        if isinstance(c, Tensor):
            c = c.item()
        out = xp.pad(x.data, widths, mode="constant", constant_values=c)
        inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))

        def bwd(g, o, need):
            return (getitem(g, inner),)

        return record(out, (x,), bwd, "pad")
    for (lo, hi), n in zip(widths, x.shape):
        if n == 0 and (lo or hi):
            raise ValueError(f"pad: mode {mode!r} cannot pad an empty axis of shape {x.shape}")
    index = [np.pad(np.arange(n), (lo, hi), mode=mode) for (lo, hi), n in zip(widths, x.shape)]
    grid = np.ix_(*index) if index else ()
    return getitem(x, tuple(_on(i, x) for i in grid))


def select(condlist, choicelist, default=0) -> Tensor:
    """Where the first true condition picks its choice, else ``default`` (NumPy's ``select``)."""
    from .math import where

    if len(condlist) != len(choicelist):
        raise ValueError(f"select: {len(condlist)} conditions for {len(choicelist)} choices")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where(cond, choice, out)
    return unary(out, "select")
