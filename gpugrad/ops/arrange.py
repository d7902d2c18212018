"""NumPy's array-rearranging functions: flips, rolls, repeats, tiles, the stack and split family,
diagonals, triangles, ``sort`` and ``pad``. Each is built from recorded shape ops (``reshape``,
``transpose``, ``getitem``, ``concat``, ``broadcast_to``), so their gradients move numbers back
and differentiate again."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import normalize_axis, record, unary
from .shape import broadcast_to, getitem, reshape, scatter_add, transpose


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


# -- padding, choosing -------------------------------------------------------------------


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


def rollaxis(x, axis: int, start: int = 0) -> Tensor:
    """NumPy's ``rollaxis``: move ``axis`` to just before position ``start``."""
    x = unary(x, "rollaxis")
    ax = _axis(axis, x.ndim)
    if not -x.ndim <= start <= x.ndim:
        raise ValueError(f"rollaxis: start {start} is out of range for a tensor of {x.ndim} dimension(s)")
    start = start % (x.ndim + 1) if start < 0 else start
    if ax < start:
        start -= 1
    return moveaxis(x, ax, start) if ax != start else x
