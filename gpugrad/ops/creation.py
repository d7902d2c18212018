"""Constructors: constant, tensor, zeros, ones, full, *_like, arange, linspace, eye."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import DEFAULT_FLOAT, Tensor, shared
from .base import holds_tensor, stack_nested


def _dev(device):
    return backend.normalize_device(device)


def _float(dtype):
    return DEFAULT_FLOAT if dtype is None else np.dtype(dtype)


def _make(fn, dtype, device):
    # array_call: inside gg.jit the new array is made afresh at every replay (so a later in-place
    # write, such as a user's raw kernel filling it, happens on that call's array)
    dev = _dev(device)
    xp = backend.xp_for(dev)
    if dev == "cpu":
        return Tensor._make(backend.array_call(fn, xp, dtype))
    with backend.cupy().cuda.Device(int(dev.split(":")[1])):
        return Tensor._make(backend.array_call(fn, xp, dtype))


def _grad(t: Tensor, requires_grad: bool) -> Tensor:
    """``t`` made a leaf that requires grad when asked (every constructor takes ``requires_grad=``)."""
    return t.requires_grad_(True) if requires_grad else t


def constant(value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A Tensor from a number, list, NumPy/CuPy array or Tensor (floats default to float32).

    An array is copied (a later write to it never changes the Tensor); see :func:`asarray`."""
    if isinstance(value, Tensor) and dtype is None and device is None and not value._is_var:
        return _grad(Tensor._make(value.data), requires_grad)
    return Tensor(value, dtype=dtype, device=device, requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """PyTorch's spelling of :func:`constant` (a copy of an array), with ``requires_grad``."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array) -> Tensor:
    """A CPU Tensor sharing memory with a NumPy array, as ``torch.from_numpy``: writing to the
    array afterwards changes the Tensor (and anything computed from it later)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return shared(array, what="from_numpy")


def asarray(data, dtype=None, device=None) -> Tensor:
    """A Tensor sharing memory with ``data`` where no cast or move is needed (``torch.as_tensor``);
    a copy otherwise. A (nested) list or tuple holding Tensors is stacked with recorded ops, so
    gradients reach those Tensors (NumPy code's ``np.asarray([x, y])``)."""
    if isinstance(data, (list, tuple)) and holds_tensor(data):
        t = stack_nested(data, "asarray")
        if device is not None:
            t = t.to(device)
        return t if dtype is None else t.astype(dtype)
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return shared(data, dtype=dtype, device=device)


def zeros(shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _grad(_make(lambda xp, dt: xp.zeros(shape, dtype=dt), _float(dtype), device), requires_grad)


def ones(shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _grad(_make(lambda xp, dt: xp.ones(shape, dtype=dt), _float(dtype), device), requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, (bool, int)) and not isinstance(fill_value, float):
        dtype = np.asarray(fill_value).dtype
    return _grad(_make(lambda xp, dt: xp.full(shape, fill_value, dtype=dt), _float(dtype), device), requires_grad)


def _like(x, dtype, device, fn):
    xd = x.data if isinstance(x, Tensor) else x
    dt = np.dtype(dtype) if dtype is not None else np.asarray(xd).dtype if not hasattr(xd, "dtype") else xd.dtype
    dev = device if device is not None else backend.device_of(xd)
    return _make(lambda xp, d: fn(xp, np.shape(xd) if not hasattr(xd, "shape") else xd.shape, d), dt, dev)


def zeros_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _grad(_like(x, dtype, device, lambda xp, s, d: xp.zeros(s, dtype=d)), requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _grad(_like(x, dtype, device, lambda xp, s, d: xp.ones(s, dtype=d)), requires_grad)


def arange(start, limit=None, delta=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if limit is None:
        start, limit = 0, start
    for name, v in (("start", start), ("limit", limit), ("delta", delta)):
        if v is None or isinstance(v, (bool, complex, str, bytes)):
            raise TypeError(f"arange: {name} must be a real number, got {v!r}")
    if delta == 0:
        raise ValueError(f"arange: delta must not be zero (arange({start}, {limit}, {delta}))")
    if dtype is None:
        isfloat = any(isinstance(v, float) for v in (start, limit, delta))
        dtype = DEFAULT_FLOAT if isfloat else np.dtype(np.int64)
    return _grad(_make(lambda xp, dt: xp.arange(start, limit, delta, dtype=dt), np.dtype(dtype), device), requires_grad)


def linspace(start, stop, num, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    t = _make(lambda xp, dt: xp.linspace(start, stop, int(num), dtype=dt), _float(dtype), device)
    return _grad(t, requires_grad)


def eye(num_rows, num_columns=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _grad(_make(lambda xp, dt: xp.eye(num_rows, num_columns, dtype=dt), _float(dtype), device), requires_grad)
