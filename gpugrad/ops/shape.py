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
    return record(out, (x,), _reshape_bwd, "reshape")


def _reshape_bwd(g, out, need):
    return (reshape(g, out._node.inputs[0].data.shape),)


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
        return (transpose(g, inv),)

    return record(x.data.transpose(perm), (x,), bwd, "transpose")


def matrix_transpose(x) -> Tensor:
    """Swap the last two axes (its own inverse, so its backward is itself)."""
    x = unary(x, "matrix_transpose")
    d = x.data
    if d.ndim < 2:
        raise ValueError(f"matrix_transpose needs at least 2 dimensions, got shape {x.shape}")
    return record(d.swapaxes(-1, -2), (x,), _mt_bwd, "matrix_transpose")


def _mt_bwd(g, out, need):
    return (matrix_transpose(g),)


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
    d = x.data
    try:
        if type(d) is np.ndarray or isinstance(d, np.generic):
            out = np.empty(shape, dtype=d.dtype)  # a filled copy: 4x cheaper than np.broadcast_to
            out[...] = d if scale is None else d * scale
        else:
            out = _xp(d).broadcast_to(d if scale is None else d * scale, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {x.shape} to shape {shape}") from None

    def bwd(g, out, need):
        gx = unbroadcast(g, x)
        return (gx if scale is None else gx * scale,)

    return record(out, (x,), bwd, "broadcast_to")


def sum_to(g, shape) -> Tensor:
    """``g`` summed back to ``shape`` after NumPy broadcasting: leading axes that broadcasting added
    are summed away, axes where ``shape`` has length 1 are summed. The transpose of
    :func:`broadcast_to` (each is the other's backward)."""
    g = unary(g, "sum_to")
    gshape = g.data.shape
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and gshape[i + lead] != 1)
    d = g.data
    if axes:  # np.add.reduce is what ndarray.sum calls, less a Python frame
        out = np.add.reduce(d, axes) if d.__class__ is np.ndarray else d.sum(axis=axes)
    else:
        out = d
    if out.shape != shape:
        out = out.reshape(shape)

    def bwd(gg, o, need):
        return (broadcast_to(gg, gshape),)

    return record(out, (g,), bwd, "sum_to")


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
    out = x.data[idx]
    if not hasattr(out, "shape") or isinstance(out, np.generic):
        out = np.asarray(out)

    def bwd(g, o, need):
        return (scatter_add(g, idx, x.shape),)

    return record(out, (x,), bwd, "getitem")


def scatter_add(g, idx, shape) -> Tensor:
    """A tensor of ``shape``, zero except ``out[idx] += g``: the transpose of ``getitem``."""
    g = unary(g)
    xp = _xp(g.data)
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_advanced(idx):
        xp.add.at(out, idx, g.data)
    else:
        out[idx] = g.data

    def bwd(gg, o, need):
        return (getitem(gg, idx),)

    return record(out, (g,), bwd, "scatter_add")


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
