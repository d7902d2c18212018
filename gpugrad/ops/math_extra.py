"""More elementwise math under NumPy's names: hyperbolic and inverse functions, other bases,
``arctan2``, ``hypot``, ``logaddexp``, ``mod`` and the functions with no gradient (``floor``,
``ceil``...). Each gradient is one line of gpugrad ops, so every order works.

Integer inputs are taken as the default float (float32), as for ``exp``.
"""

from __future__ import annotations

import math as _m

import numpy as np

from .. import backend
from ..tensor import Tensor
from .base import record, to_float, unary
from .math import _binary, _unary, abs, cos, exp, sqrt, where


def _xp(d):
    return backend.get_array_module(d)


def _xp2(a, b):
    return _xp(a if hasattr(a, "shape") else b)


def _ins(out):
    return out._node.inputs


# -- unary --------------------------------------------------------------------------------------

sinh = _unary("sinh", lambda d: _xp(d).sinh(d), lambda g, x, y: g * cosh(x), real=True, arrays=False)
cosh = _unary("cosh", lambda d: _xp(d).cosh(d), lambda g, x, y: g * sinh(x), real=True, arrays=False)
arcsin = _unary("arcsin", lambda d: _xp(d).arcsin(d), lambda g, x, y: g / sqrt(1.0 - x * x), real=True, arrays=False)
arccos = _unary("arccos", lambda d: _xp(d).arccos(d), lambda g, x, y: -g / sqrt(1.0 - x * x), real=True, arrays=False)
arctan = _unary("arctan", lambda d: _xp(d).arctan(d), lambda g, x, y: g / (1.0 + x * x), real=True)
arcsinh = _unary("arcsinh", lambda d: _xp(d).arcsinh(d), lambda g, x, y: g / sqrt(x * x + 1.0), real=True, arrays=False)
arccosh = _unary("arccosh", lambda d: _xp(d).arccosh(d), lambda g, x, y: g / sqrt(x * x - 1.0), real=True, arrays=False)
arctanh = _unary("arctanh", lambda d: _xp(d).arctanh(d), lambda g, x, y: g / (1.0 - x * x), real=True)
log2 = _unary("log2", lambda d: _xp(d).log2(d), lambda g, x, y: g / (x * _m.log(2.0)), real=True)
log10 = _unary("log10", lambda d: _xp(d).log10(d), lambda g, x, y: g / (x * _m.log(10.0)), real=True)
exp2 = _unary("exp2", lambda d: _xp(d).exp2(d), lambda g, x, y: g * y * _m.log(2.0), real=True)
rad2deg = _unary("rad2deg", lambda d: d * (180.0 / np.pi), lambda g, x, y: g * (180.0 / np.pi), real=True)
deg2rad = _unary("deg2rad", lambda d: d * (np.pi / 180.0), lambda g, x, y: g * (np.pi / 180.0), real=True)
reciprocal = _unary("reciprocal", lambda d: 1.0 / d, lambda g, x, y: -g * y * y, real=True)
degrees = rad2deg
radians = deg2rad


def _sinc_fwd(d):
    return _xp(d).sinc(d)


def _sinc_bwd(g, x, out):
    # d/dx sin(πx)/(πx) = (cos(πx) − sinc(x)) / x; near 0 its Taylor series, whose own
    # derivatives are those of sinc there too (so every order is right at 0)
    small = abs(x) < 0.02
    safe = where(small, 1.0, x)
    u = np.pi * where(small, x, 0.0)
    u2 = u * u
    series = np.pi * u * (-1.0 / 3 + u2 * (1.0 / 30 + u2 * (-1.0 / 840 + u2 * (1.0 / 45360 - u2 / 3991680))))
    return g * where(small, series, (cos(np.pi * safe) - out) / safe)


sinc = _unary("sinc", _sinc_fwd, _sinc_bwd, real=True, arrays=False)


def _constant_unary(name, fn):
    def op(x) -> Tensor:
        x = unary(x, name)
        return Tensor._make(fn(x.data))

    op.__name__ = name
    op.__doc__ = f"NumPy's ``{name}``: piecewise constant, so not differentiable (a constant to the graph)."
    return op


floor = _constant_unary("floor", lambda d: _xp(d).floor(d))
ceil = _constant_unary("ceil", lambda d: _xp(d).ceil(d))
trunc = _constant_unary("trunc", lambda d: _xp(d).trunc(d))
rint = _constant_unary("rint", lambda d: _xp(d).rint(d))
fix = _constant_unary("fix", lambda d: _xp(d).trunc(d))


def round(x, decimals: int = 0) -> Tensor:  # noqa: A001
    """NumPy's ``round`` (half to even): piecewise constant, so a constant to the graph."""
    x = unary(x, "round")
    return Tensor._make(_xp(x.data).round(x.data, decimals))


around = round


def real(x) -> Tensor:
    """The real part: a real tensor itself (complex tensors are refused when made)."""
    return unary(x, "real")


def conj(x) -> Tensor:
    """The complex conjugate: a real tensor itself."""
    return unary(x, "conj")


conjugate = conj


def imag(x) -> Tensor:
    """The imaginary part of a real tensor: zeros (a constant)."""
    x = unary(x, "imag")
    return Tensor._make(_xp(x.data).zeros_like(x.data))


# -- binary -------------------------------------------------------------------------------------


def _float_args(a, b):
    """Integer tensors (or a pair of plain numbers) as the default float, as the real unary ops."""
    if isinstance(a, Tensor):
        a = to_float(a)
    if isinstance(b, Tensor):
        b = to_float(b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = to_float(unary(a))
    return a, b


def _real_binary(name, fn, bwd):
    core = _binary(name, fn, bwd)

    def op(a, b) -> Tensor:
        return core(*_float_args(a, b))

    op.__name__ = name
    return op


def _unb(g, x):
    from .base import unbroadcast

    return unbroadcast(g, x)


def _arctan2_bwd(g, out, need):
    y, x = _ins(out)
    r = y * y + x * x
    return (_unb(g * x / r, y) if need[0] else None, _unb(-g * y / r, x) if need[1] else None)


def _hypot_bwd(g, out, need):
    a, b = _ins(out)
    return (_unb(g * a / out, a) if need[0] else None, _unb(g * b / out, b) if need[1] else None)


def _logaddexp_bwd(g, out, need):
    a, b = _ins(out)
    return (_unb(g * exp(a - out), a) if need[0] else None, _unb(g * exp(b - out), b) if need[1] else None)


def _logaddexp2_bwd(g, out, need):
    a, b = _ins(out)
    return (
        _unb(g * exp((a - out) * _m.log(2.0)), a) if need[0] else None,
        _unb(g * exp((b - out) * _m.log(2.0)), b) if need[1] else None,
    )


def _mod_bwd(g, out, need):
    # a mod b = a − b·floor(a / b): d/da = 1, d/db = −floor(a / b)
    a, b = _ins(out)
    return (_unb(g, a) if need[0] else None, _unb(-g * floor(a / b), b) if need[1] else None)


arctan2 = _real_binary("arctan2", lambda a, b: _xp2(a, b).arctan2(a, b), _arctan2_bwd)
hypot = _real_binary("hypot", lambda a, b: _xp2(a, b).hypot(a, b), _hypot_bwd)
logaddexp = _real_binary("logaddexp", lambda a, b: _xp2(a, b).logaddexp(a, b), _logaddexp_bwd)
logaddexp2 = _real_binary("logaddexp2", lambda a, b: _xp2(a, b).logaddexp2(a, b), _logaddexp2_bwd)
mod = _binary("mod", lambda a, b: _xp2(a, b).mod(a, b), _mod_bwd)
remainder = mod


def floor_divide(a, b) -> Tensor:
    """``a // b``: piecewise constant, so a constant to the graph."""
    from .base import pair

    a, b, ad, bd = pair(a, b, "floor_divide")
    return Tensor._make(_xp2(ad, bd).floor_divide(ad, bd))


def _rmod(a, b):
    return mod(b, a)


def _rfloordiv(a, b):
    return floor_divide(b, a)


# keep the names of the ops this module builds on importable from here
__all__ = [
    "sinh",
    "cosh",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
    "log2",
    "log10",
    "exp2",
    "rad2deg",
    "deg2rad",
    "degrees",
    "radians",
    "reciprocal",
    "sinc",
    "floor",
    "ceil",
    "trunc",
    "rint",
    "fix",
    "round",
    "around",
    "real",
    "conj",
    "conjugate",
    "imag",
    "arctan2",
    "hypot",
    "logaddexp",
    "logaddexp2",
    "mod",
    "remainder",
    "floor_divide",
    "nan_to_num",
    "fmax",
    "fmin",
    "isnan",
    "isinf",
    "isfinite",
    "signbit",
    "angle",
    "real_if_close",
]


def nan_to_num(x, nan: float = 0.0, posinf=None, neginf=None) -> Tensor:
    """NaN and infinities replaced by numbers; the gradient passes where ``x`` is finite."""
    x = unary(x, "nan_to_num")
    d = x.data
    xp = _xp(d)
    out = xp.nan_to_num(d, nan=nan, posinf=posinf, neginf=neginf) if d.dtype.kind == "f" else d.copy()

    def bwd(g, o, need):
        return (where(Tensor._make(xp.isfinite(d)), g, 0.0),)

    return record(out, (x,), bwd, "nan_to_num")


def _fext_bwd(first_wins):
    def bwd(g, out, need):
        a, b = _ins(out)
        first = first_wins(a, b)
        return (
            _unb(where(first, g, 0.0), a) if need[0] else None,
            _unb(where(first, 0.0, g), b) if need[1] else None,
        )

    return bwd


def _d(x):
    return x.data if isinstance(x, Tensor) else x


# the NaN-ignoring maximum and minimum: the gradient goes to the value taken (to ``a`` on ties)
fmax = _binary(
    "fmax",
    lambda a, b: _xp2(a, b).fmax(a, b),
    _fext_bwd(lambda a, b: Tensor._make((_d(a) >= _d(b)) | (_d(b) != _d(b)))),
)
fmin = _binary(
    "fmin",
    lambda a, b: _xp2(a, b).fmin(a, b),
    _fext_bwd(lambda a, b: Tensor._make((_d(a) <= _d(b)) | (_d(b) != _d(b)))),
)


def _constant_test(name, fn):
    def op(x) -> Tensor:
        x = unary(x, name)
        return Tensor._make(fn(_xp(x.data), x.data))

    op.__name__ = name
    op.__doc__ = f"NumPy's ``{name}``: a boolean constant (not differentiable)."
    return op


isnan = _constant_test("isnan", lambda xp, d: xp.isnan(d))
isinf = _constant_test("isinf", lambda xp, d: xp.isinf(d))
isfinite = _constant_test("isfinite", lambda xp, d: xp.isfinite(d))
signbit = _constant_test("signbit", lambda xp, d: xp.signbit(d))


def angle(x) -> Tensor:
    """The angle of a real number: 0, or π where it is negative (a constant)."""
    x = unary(x, "angle")
    d = x.data
    xp = _xp(d)
    dt = d.dtype if d.dtype.kind == "f" else np.dtype(np.float32)
    return Tensor._make(xp.where(d < 0, np.pi, 0.0).astype(dt))


def real_if_close(x, tol: float = 100) -> Tensor:
    """A real tensor itself."""
    return unary(x, "real_if_close")
