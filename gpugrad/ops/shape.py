"""Shape ops: reshape, transpose, expand_dims, squeeze, concat, stack, broadcast_to, indexing,
and the move between devices. Their gradients only move numbers around."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import check_devices, normalize_axis, record, unary, unbroadcast


def _xp(d):
    return backend.get_array_module(d)


def reshape(x, shape) -> Tensor:
    x = unary(x, "reshape")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        out = x.data.reshape(tuple(shape))
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into shape {tuple(shape)}") from None
    return record(out, (x,), _reshape_bwd, "reshape", _reshape_bwd)


def reshape_any(g, shape):
    """``reshape`` of a Tensor (recorded), or of an array as it is (a backward on arrays)."""
    return reshape(g, shape) if isinstance(g, Tensor) else g.reshape(shape)


def _reshape_bwd(g, out, need):
    return (reshape_any(g, out._node.inputs[0].data.shape),)


def transpose(x, perm=None) -> Tensor:
    x = unary(x, "transpose")
    nd = x.data.ndim
    if perm is None:
        perm = tuple(range(nd))[::-1]
    given = tuple(perm)
    if any(not isinstance(p, (int, np.integer)) or not -nd <= p < nd for p in given):
        raise ValueError(f"transpose: axes {given} are out of range for a tensor of shape {x.shape}")
    perm = tuple(int(p) % nd for p in given) if nd else ()
    if sorted(perm) != list(range(nd)):
        raise ValueError(f"transpose: axes {given} are not a permutation of the {nd} axes of shape {x.shape}")
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i

    def bwd(g, out, need):
        return (transpose(g, inv) if isinstance(g, Tensor) else g.transpose(inv),)

    return record(x.data.transpose(perm), (x,), bwd, "transpose", bwd)


def matrix_transpose(x) -> Tensor:
    """Swap the last two axes (its own inverse, so its backward is itself)."""
    x = unary(x, "matrix_transpose")
    d = x.data
    if d.ndim < 2:
        raise ValueError(f"matrix_transpose needs at least 2 dimensions, got shape {x.shape}")
    return record(d.swapaxes(-1, -2), (x,), _mt_bwd, "matrix_transpose", _mt_bwd)


def _mt_bwd(g, out, need):
    return (matrix_transpose(g) if isinstance(g, Tensor) else g.swapaxes(-1, -2),)


def expand_dims(x, axis: int) -> Tensor:
    x = unary(x, "expand_dims")
    return reshape(x, _xp(x.data).expand_dims(x.data, axis).shape)


def squeeze(x, axis=None) -> Tensor:
    x = unary(x, "squeeze")
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = normalize_axis(axis, x.ndim)
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has length {x.shape[a]}, not 1")
        shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    return reshape(x, shape)


def broadcast_to(x, shape, scale=None) -> Tensor:
    """``x`` repeated to ``shape`` (NumPy broadcasting), times ``scale`` if given (one op: the
    backward of ``mean``)."""
    x = unary(x, "broadcast_to")
    shape = tuple(shape)
    if x.shape == shape and scale is None:
        return x
    try:
        out = broadcast_data(x.data, shape, scale)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {x.shape} to shape {shape}") from None

    def bwd(g, out, need):
        gx = unbroadcast(g, x)
        return (gx if scale is None else gx * scale,)

    return record(out, (x,), bwd, "broadcast_to", bwd)


def broadcast_data(d, shape, scale=None):
    """:func:`broadcast_to` on an array: a filled copy on NumPy (4x cheaper than np.broadcast_to
    and writable), a broadcast view elsewhere."""
    if type(d) is np.ndarray or isinstance(d, np.generic):
        out = np.empty(shape, dtype=d.dtype)
        out[...] = d if scale is None else d * scale
        return out
    return _xp(d).broadcast_to(d if scale is None else d * scale, shape)


def broadcast_any(g, shape, scale=None):
    """:func:`broadcast_to` of a Tensor (recorded) or of an array (a backward on arrays); the
    same shape and no scale gives ``g`` itself."""
    if isinstance(g, Tensor):
        return broadcast_to(g, shape, scale)
    if g.shape == shape and scale is None:
        return g
    return broadcast_data(g, shape, scale)


def sum_to(g, shape) -> Tensor:
    """``g`` summed back to ``shape`` after NumPy broadcasting: leading axes that broadcasting added
    are summed away, axes where ``shape`` has length 1 are summed. The transpose of
    :func:`broadcast_to` (each is the other's backward)."""
    g = unary(g, "sum_to")
    gshape = g.data.shape
    shape = tuple(shape)
    if gshape == shape:
        return g

    def bwd(gg, o, need):
        return (broadcast_any(gg, gshape),)

    return record(sum_to_data(g.data, shape), (g,), bwd, "sum_to", bwd)


def sum_to_data(d, shape):
    """:func:`sum_to` on an array (a backward on arrays calls it directly)."""
    gshape = d.shape
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and gshape[i + lead] != 1)
    if axes:  # np.add.reduce is what ndarray.sum calls, less a Python frame
        d = np.add.reduce(d, axes) if d.__class__ is np.ndarray else d.sum(axis=axes)
    return d if d.shape == shape else d.reshape(shape)


def _same_device(tensors, op):
    for t in tensors[1:]:
        if type(t.data) is not type(tensors[0].data):
            check_devices(tensors[0], t, op)


def concat(values, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = [unary(v) for v in values]
    if not ts:
        raise ValueError("concat: needs at least one tensor")
    if ts[0].ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along; use stack")
    _same_device(ts, "concat")
    ax = normalize_axis(axis, ts[0].ndim)[0]
    for t in ts[1:]:
        if t.ndim != ts[0].ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, ts[0].shape)) if i != ax
        ):
            raise ValueError(
                f"concat: shapes {ts[0].shape} and {t.shape} differ outside axis {ax}"
            )
    xp = _xp(ts[0].data)
    out = xp.concatenate([t.data for t in ts], axis=ax)
    bounds = np.cumsum([0] + [t.shape[ax] for t in ts])

    def bwd(g, o, need):
        idx = [slice(None)] * g.ndim
        res = []
        for i, m in enumerate(need):
            if m:
                idx[ax] = slice(int(bounds[i]), int(bounds[i + 1]))
                res.append(getitem(g, tuple(idx)))
            else:
                res.append(None)
        return tuple(res)

    return record(out, tuple(ts), bwd, "concat")


def stack(values, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    ts = [unary(v) for v in values]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: all shapes must match, got {ts[0].shape} and {t.shape}")
    return concat([expand_dims(t, axis) for t in ts], axis=axis)


def unstack(x, axis: int = 0):
    x = unary(x, "unstack")
    ax = normalize_axis(axis, x.ndim)[0]
    idx = [slice(None)] * x.ndim
    out = []
    for i in range(x.shape[ax]):
        idx[ax] = i
        out.append(getitem(x, tuple(idx)))
    return out


def _plain_index(idx):
    """Tensors inside an index become arrays."""
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    return idx


def _is_advanced(idx) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(hasattr(i, "shape") or isinstance(i, list) for i in items)


def getitem(x, idx) -> Tensor:
    """``x[idx]`` with NumPy semantics; the gradient scatters back (adding where an index repeats)."""
    x = unary(x, "getitem")
    idx = _plain_index(idx)
    out = _take(x.data, idx)

    def bwd(g, o, need):
        return (scatter_add(g, idx, x.shape) if isinstance(g, Tensor) else scatter_data(g, idx, x.shape),)

    return record(out, (x,), bwd, "getitem", bwd)


def _take(d, idx):
    out = d[idx]
    if not hasattr(out, "shape") or isinstance(out, np.generic):
        out = np.asarray(out)
    return out


def scatter_add(g, idx, shape) -> Tensor:
    """A tensor of ``shape``, zero except ``out[idx] += g``: the transpose of ``getitem``."""
    g = unary(g)

    def bwd(gg, o, need):
        return (getitem(gg, idx) if isinstance(gg, Tensor) else _take(gg, idx),)

    return record(scatter_data(g.data, idx, shape), (g,), bwd, "scatter_add", bwd)


def scatter_data(d, idx, shape):
    """:func:`scatter_add` on an array."""
    xp = _xp(d)
    out = xp.zeros(shape, dtype=d.dtype)
    if _is_advanced(idx):
        xp.add.at(out, idx, d)
    else:
        out[idx] = d
    return out


def to_device(x, device: str) -> Tensor:
    x = unary(x, "to_device")
    src = x.device
    if src == device:
        return x

    def bwd(g, o, need):
        return (to_device(g, src),)

    return record(backend.to_device(x.data, device), (x,), bwd, "to_device")


def one_hot(indices, depth: int, dtype=None, device=None) -> Tensor:
    """A constant: ``out[..., k] = 1`` where ``indices == k``; indices outside [0, depth) give a zero row."""
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"one_hot: depth must be an int, got {depth!r}")
    if depth < 0:
        raise ValueError(f"one_hot: depth must be non-negative, got {depth}")
    if isinstance(indices, Tensor):
        d = indices.data
    else:
        from ..tensor import _to_array

        d = _to_array(indices, None, device)
    if device is not None:
        d = backend.to_device(d, backend.normalize_device(device))
    xp = _xp(d)
    d = xp.asarray(d)
    if d.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got {d.dtype}")
    dt = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
    return Tensor._make((d[..., None] == xp.arange(depth)).astype(dt))
