"""What every op shares: argument coercion, device checks, the one ``unbroadcast``, and the
switch that sends CuPy arrays to our raw CUDA kernels."""

from __future__ import annotations

import os

import numpy as np

from .. import backend
from ..graph import record  # noqa: F401  (re-exported for the op modules)
from ..tensor import DEFAULT_FLOAT, Tensor, _to_array, as_tensor, check_kind, holds_tensor  # noqa: F401

SCALARS = (int, float)
USE_KERNELS = os.environ.get("GPUGRAD_KERNELS", "1") != "0"


def kernel_module(d):
    """:mod:`gpugrad.kernels` for CuPy array ``d`` (imported on first use: the ops reach it only
    with CuPy arrays); seen through the trace when ``d`` is traced by ``gg.jit``."""
    from .. import kernels

    trace = getattr(d, "gg_trace", None)
    return kernels if trace is None else trace.kernels(kernels)


def check_devices(a: Tensor, b: Tensor, op: str) -> None:
    da, db = a.device, b.device
    if da != db:
        raise RuntimeError(
            f"{op}: tensors are on different devices ({da} and {db}); move one with .to('{da}') "
            f"or .to('{db}') — gpugrad never copies across devices silently"
        )


def pair(a, b, op: str):
    """Coerce a binary op's operands: Tensors stay, Python numbers stay as weak scalars,
    anything else (lists, arrays) becomes a Tensor on the other operand's device."""
    if isinstance(a, Tensor):
        ad = a.data
        if isinstance(b, Tensor):
            bd = b.data
            if type(ad) is not type(bd):
                check_devices(a, b, op)
        elif isinstance(b, SCALARS):
            bd = b
        else:
            b = _coerce(b, a, op)
            bd = b.data
    elif isinstance(b, Tensor):
        bd = b.data
        if isinstance(a, SCALARS):
            ad = a
        else:
            a = _coerce(a, b, op)
            ad = a.data
    else:
        a = unary(a, op)
        b = _coerce(b, a, op)
        ad, bd = a.data, b.data
    if needs_promotion(ad, bd):
        ad, bd = promote(ad, bd)
    return a, b, ad, bd


def _coerce(x, like: Tensor, op: str) -> Tensor:
    if backend.is_cupy_array(x) or isinstance(x, np.ndarray):
        x = check_kind(x, op)  # a dtype no op takes is refused first, whatever the device
        if type(x) is not type(like.data):
            check_devices(Tensor._make(x), like, op)
        # a copy: the graph may keep it, and a later write to the caller's array must not change it
        return Tensor._make(x.copy())
    if isinstance(x, np.floating):
        return as_tensor(float(x), like)
    if isinstance(x, bool):
        return as_tensor(x, like)
    if isinstance(x, (list, tuple)) and holds_tensor(x):
        return stack_nested(x, op)
    # a NumPy scalar or a list: its values decide its dtype, then the op promotes
    return Tensor._make(_to_array(x, None, like.device, what=op))


# -- dtype promotion -----------------------------------------------------------------------------


def promote(ad, bd):
    """The operands of a binary op cast to their common dtype, as PyTorch and JAX (not raw NumPy):

    ===========================================  ===================  =========================
    operands                                     result               example
    ===========================================  ===================  =========================
    float with integer/bool (tensor or array)    the float's dtype    float32 × int64 → float32
    float with a Python number                   the float's dtype    float16 + 2.5 → float16
    two floats                                   the wider            float32 + float64 → float64
    integer/bool with a Python float             float32              int64 × 0.5 → float32
    integers and bools among themselves          NumPy's rule         int32 + int64 → int64
    ===========================================  ===================  =========================

    Real-valued functions of integers (``exp``, ``sigmoid``, ``mean``...) take them as float32
    (:func:`to_float`). The graph keeps the operands' own dtypes, so gradients have them too.
    """
    if hasattr(ad, "dtype"):
        if hasattr(bd, "dtype"):
            fa, fb = ad.dtype.kind == "f", bd.dtype.kind == "f"
            if fa and not fb:
                bd = bd.astype(ad.dtype)
            elif fb and not fa:
                ad = ad.astype(bd.dtype)
        elif bd.__class__ is float and ad.dtype.kind != "f":
            ad = ad.astype(DEFAULT_FLOAT)
    elif ad.__class__ is float and bd.dtype.kind != "f":
        bd = bd.astype(DEFAULT_FLOAT)
    return ad, bd


def needs_promotion(ad, bd) -> bool:
    """Whether :func:`promote` would change anything (cheap: the common case is a quick no)."""
    ca, cb = ad.__class__, bd.__class__
    if cb is float:
        return ca is not float and ad.dtype.kind != "f"
    if ca is float:
        return bd.dtype.kind != "f"
    if ca is int or cb is int or ca is bool or cb is bool:
        return False
    da, db = ad.dtype, bd.dtype
    return da is not db and (da.kind == "f") != (db.kind == "f")


def to_float(x: Tensor) -> Tensor:
    """``x`` itself if it is a float tensor, else its value as the default float (float32), as
    PyTorch and JAX do for ``exp``, ``sigmoid``, ``mean``... of integers."""
    d = x.data
    if d.dtype.kind == "f":
        return x
    return Tensor._make(d.astype(DEFAULT_FLOAT))


def unary(x, op: str = "op") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple)) and holds_tensor(x):
        return stack_nested(x, op)
    return Tensor._make(_to_array(x, what=op))


def stack_nested(x, op: str = "op", like: Tensor | None = None) -> Tensor:
    """A (nested) list or tuple of Tensors and numbers as one Tensor, stacked with recorded ops so
    the gradient reaches every Tensor in it (as HIPS autograd; never a constant)."""
    if like is None:
        like = _first_tensor(x)
    if isinstance(x, Tensor):
        return x
    if not isinstance(x, (list, tuple)):
        if isinstance(x, (bool, int, float)):
            return as_tensor(x, like)
        return _coerce(x, like, op)
    if not x:
        raise ValueError(f"{op}: an empty list cannot be stacked with tensors of shape {like.shape}")
    parts = [stack_nested(v, op, like) for v in x]
    shapes = {p.shape for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"{op}: a list of tensors of different shapes {sorted(shapes)} cannot be made one tensor")
    return (_SHAPE or _load_shape()).stack(parts)


def _first_tensor(x):
    for v in x:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, (list, tuple)):
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def broadcast_error(op: str, a, b) -> ValueError:
    sa = getattr(a, "shape", ())
    sb = getattr(b, "shape", ())
    return ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast together")


def unbroadcast(g, x):
    """Sum ``g`` back to the shape of ``x`` (the input it flows to) after NumPy broadcasting.

    Leading axes that broadcasting added are summed away; axes where ``x`` had length 1 are
    summed with keepdims. A Tensor ``g`` is summed by a recorded op (``shape.sum_to``), so it
    differentiates again; an array (a first-order backward on arrays) by the same NumPy call.
    None (no gradient) stays None, and so does any ``x`` that is not a Tensor (a constant).
    """
    if g is None or not isinstance(x, Tensor):
        return None
    shape = x.data.shape
    if g.shape == shape:
        return g
    sh = _SHAPE or _load_shape()
    return sh.sum_to(g, shape) if isinstance(g, Tensor) else sh.sum_to_data(g, shape)


def operand(x, g):
    """Input ``x`` of a node as a backward rule on arrays uses it beside the gradient array ``g``:
    Python numbers stay, integer and bool arrays take ``g``'s float dtype (the promotion of
    :func:`promote`, so the rule computes what the recorded ops would)."""
    if not isinstance(x, Tensor):
        return x
    d = x.data
    return d if d.dtype.kind == "f" else d.astype(g.dtype)


_SHAPE = None


def _load_shape():
    """:mod:`gpugrad.ops.shape`, bound on first use (it imports this module)."""
    global _SHAPE
    from . import shape

    _SHAPE = shape
    return shape


_ALL_AXES = [tuple(range(n)) for n in range(33)]


def normalize_axis(axis, ndim: int):
    """None, an int or a tuple -> a sorted tuple of non-negative axes (None means all).

    An axis out of range, a repeated axis (``(0, 0)``, or ``(1, -1)`` of a 2-d tensor) or a
    non-integer raises a ValueError naming what was given."""
    if axis is None:
        return _ALL_AXES[ndim]
    if axis.__class__ is int and 0 <= axis < ndim:
        return (axis,)
    given = axis
    if isinstance(axis, Tensor):
        axis = axis.tolist()
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {given!r}")
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of {ndim} dimension(s) (axis={given!r})")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {given!r} repeats an axis of a tensor of {ndim} dimension(s)")
    if not ndim:  # axis 0 of a 0-d tensor is the tensor itself: nothing to reduce
        return ()
    return tuple(sorted(out))
