"""Elementwise arithmetic and math. Each gradient is one line of gpugrad ops.

Backward functions take ``(g, out, need)``: the upstream gradient, the op's output Tensor (its
node holds the inputs) and which inputs want a gradient.

Tie conventions: ``maximum``/``minimum`` send the whole gradient to the first argument where the
two are equal (as TensorFlow); ``abs`` has gradient 0 at 0.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import backend, graph
from ..tensor import Tensor, is_float
from .base import broadcast_error, needs_promotion, operand, pair, promote, record, to_float, unary, unbroadcast

_SCALARS = (int, float)
_ENGINE = graph.ENGINE  # the compiled engine, or None


def _xp(d):
    return backend.get_array_module(d)


# -- binary -------------------------------------------------------------------------------------


def _binary(name, fn, bwd, fast=None, scalar_fast=(None, None)):
    """A binary op; ``scalar_fast`` are its rules on arrays when the second (first) operand is a
    Python number: the other has the output's shape, so nothing is summed back (``fast`` serves
    where they are None)."""
    fast_b = scalar_fast[0] or fast
    fast_a = scalar_fast[1] or fast

    def op(a, b):
        # fast path: a Tensor with a Tensor of the same array type, or with a Python number
        if isinstance(a, Tensor) and isinstance(b, Tensor) and type(a.data) is type(b.data):
            ad = a.data
            bd = b.data
            if ad.dtype is not bd.dtype and needs_promotion(ad, bd):
                ad, bd = promote(ad, bd)
        elif isinstance(a, Tensor) and b.__class__ in _SCALARS:
            ad = a.data
            bd = b
            if b.__class__ is float and ad.dtype.kind != "f":  # an integer tensor with a Python float
                ad = promote(ad, bd)[0]
            return record(fn(ad, bd), (a, b), bwd, name, fast_b)  # a number never fails to broadcast
        elif a.__class__ in _SCALARS and isinstance(b, Tensor):  # a Python number first (2.0 * t)
            ad = a
            bd = b.data
            if a.__class__ is float and bd.dtype.kind != "f":
                bd = promote(ad, bd)[1]
            return record(fn(ad, bd), (a, b), bwd, name, fast_a)
        else:
            a, b, ad, bd = pair(a, b, name)
        try:
            out = fn(ad, bd)
        except ValueError as e:
            if "broadcast" in str(e):
                raise broadcast_error(name, ad, bd) from None
            raise
        return record(out, (a, b), bwd, name, fast)

    op.__name__ = name
    if _ENGINE is None:
        return op
    # the common cases (a Tensor with a Tensor of its dtype, or with a Python number) in the
    # compiled engine; the rest, and every error, in ``op`` above
    spec = (fn, op, bwd, name, fast, fast_b, fast_a)
    compiled = _ENGINE.binary

    def binary(a, b):
        return compiled(spec, a, b)

    binary.__name__ = binary.__qualname__ = name
    binary.python = op
    return binary


def _both(rule):
    """A binary op's backward (recorded ops) and its ``fast`` twin (arrays) from one rule
    ``rule(g, a, b, need) -> (ga, gb)`` written with operators, which Tensors and arrays share;
    each gradient is then summed back to its input's shape."""

    def bwd(g, out, need):
        a, b = out._node.inputs
        ga, gb = rule(g, a, b, need)
        return unbroadcast(ga, a), unbroadcast(gb, b)

    def fast(g, out, need):
        a, b = out._node.inputs
        ga, gb = rule(g, operand(a, g), operand(b, g), need)
        return unbroadcast(ga, a), unbroadcast(gb, b)

    return bwd, fast


_add_bwd, _add_fast = _both(lambda g, a, b, need: (g if need[0] else None, g if need[1] else None))
_sub_bwd, _sub_fast = _both(lambda g, a, b, need: (g if need[0] else None, -g if need[1] else None))
_mul_bwd, _mul_fast = _both(lambda g, a, b, need: (g * b if need[0] else None, g * a if need[1] else None))
_div_bwd, _div_fast = _both(
    lambda g, a, b, need: (g / b if need[0] else None, -g * a / (b * b) if need[1] else None)
)


def _pow_bwd(g, out, need):
    a, b = out._node.inputs
    ga = gb = None
    if need[0]:  # b·a^(b−1), with the exponent 1 where b = 0 (so d/dx x**0 is 0 at x = 0, every order)
        if isinstance(b, Tensor):
            e = where(b == 0, 1.0, b - 1)
        else:
            e = b - 1 if b != 0 else 1
        ga = unbroadcast(g * b * a**e, a)
    if need[1] and not isinstance(a, Tensor):  # constant base: d(a**x)/dx = ln(a) a**x (0 where a ≤ 0)
        gb = unbroadcast(g * out * (float(np.log(a)) if a > 0 else 0.0), b)
    elif need[1]:
        pos = a > 0
        safe = where(pos, a, 1.0)
        gb = unbroadcast(g * out * where(pos, log(safe), 0.0), b)
    return ga, gb


def _select(c, x, y):
    """``where(c, x, y)`` of Tensors (recorded), or of arrays as NumPy/CuPy do it (a backward on arrays)."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return where(c, x, y)
    return _xp(x if hasattr(x, "shape") else y).where(c.data if isinstance(c, Tensor) else c, x, y)


def _max_rule(g, a, b, need):
    first = a >= b
    return (_select(first, g, 0.0) if need[0] else None, _select(first, 0.0, g) if need[1] else None)


def _min_rule(g, a, b, need):
    first = a <= b
    return (_select(first, g, 0.0) if need[0] else None, _select(first, 0.0, g) if need[1] else None)


_max_bwd, _max_fast = _both(_max_rule)
_min_bwd, _min_fast = _both(_min_rule)


add = _binary("add", operator.add, _add_bwd, _add_fast, (
    lambda g, out, need: (g if need[0] else None, None),
    lambda g, out, need: (None, g if need[1] else None),
))
subtract = _binary("subtract", operator.sub, _sub_bwd, _sub_fast, (
    lambda g, out, need: (g if need[0] else None, None),
    lambda g, out, need: (None, -g if need[1] else None),
))
multiply = _binary("multiply", operator.mul, _mul_bwd, _mul_fast, (
    lambda g, out, need: (g * out._node.inputs[1] if need[0] else None, None),
    lambda g, out, need: (None, g * out._node.inputs[0] if need[1] else None),
))
divide = _binary("divide", operator.truediv, _div_bwd, _div_fast, (
    lambda g, out, need: (g / out._node.inputs[1] if need[0] else None, None),
    None,
))
pow = _binary("pow", operator.pow, _pow_bwd)  # noqa: A001
maximum = _binary("maximum", lambda a, b: _xp(a if hasattr(a, "shape") else b).maximum(a, b), _max_bwd, _max_fast)
minimum = _binary("minimum", lambda a, b: _xp(a if hasattr(a, "shape") else b).minimum(a, b), _min_bwd, _min_fast)


def _radd(a, b):
    return add(b, a)


def _rsub(a, b):
    return subtract(b, a)


def _rmul(a, b):
    return multiply(b, a)


def _rdiv(a, b):
    return divide(b, a)


def _rpow(a, b):
    return pow(b, a)


def _tensor_pow(a, b):
    """``a ** b``: an exponent of 2 is ``square`` (one multiply, the common case in losses)."""
    if b.__class__ is int and b == 2 or b.__class__ is float and b == 2.0:
        return square(a)
    return pow(a, b)


def _compare(name, fn):
    def op(a, b):
        a, b, ad, bd = pair(a, b, name)
        try:
            return Tensor._make(fn(ad, bd))
        except ValueError as e:
            if "broadcast" in str(e):
                raise broadcast_error(name, ad, bd) from None
            raise

    op.__name__ = name
    return op


less = _compare("less", lambda a, b: a < b)
less_equal = _compare("less_equal", lambda a, b: a <= b)
greater = _compare("greater", lambda a, b: a > b)
greater_equal = _compare("greater_equal", lambda a, b: a >= b)
equal = _compare("equal", lambda a, b: a == b)
not_equal = _compare("not_equal", lambda a, b: a != b)


# -- unary --------------------------------------------------------------------------------------


def _unary(name, fn, rule, real=False, arrays=True):
    """An elementwise op whose gradient is ``rule(g, x, y)`` (x the input, y the output);
    ``real``: its values are real numbers, so an integer or bool input is taken as the default
    float (PyTorch and JAX), not as NumPy's float64. ``arrays``: the rule is written with
    operators alone, so it also runs on arrays (a first-order backward)."""

    def bwd(g, out, need):
        return (rule(g, out._node.inputs[0], out),)

    def fast(g, out, need):
        return (rule(g, out._node.inputs[0].data, out.data),)

    if not arrays:
        fast = None

    def op(x):
        if x.__class__ is not Tensor or real and x.data.dtype.kind != "f":
            x = unary(x, name)
            if real:
                x = to_float(x)
        return record(fn(x.data), (x,), bwd, name, fast)

    op.__name__ = name
    return op


def _x(out):
    return out._node.inputs[0]


negative = _unary("negative", lambda d: -d, lambda g, x, y: -g)
exp = _unary("exp", lambda d: _xp(d).exp(d), lambda g, x, y: g * y, real=True)
log = _unary("log", lambda d: _xp(d).log(d), lambda g, x, y: g / x, real=True)
log1p = _unary("log1p", lambda d: _xp(d).log1p(d), lambda g, x, y: g / (x + 1.0), real=True)
expm1 = _unary("expm1", lambda d: _xp(d).expm1(d), lambda g, x, y: g * (y + 1.0), real=True)
sqrt = _unary("sqrt", lambda d: _xp(d).sqrt(d), lambda g, x, y: g * 0.5 / y, real=True)
square = _unary("square", lambda d: d * d, lambda g, x, y: scaled_product(g, x, 2.0))
sin = _unary("sin", lambda d: _xp(d).sin(d), lambda g, x, y: g * cos(x), real=True, arrays=False)
cos = _unary("cos", lambda d: _xp(d).cos(d), lambda g, x, y: -g * sin(x), real=True, arrays=False)
tan = _unary("tan", lambda d: _xp(d).tan(d), lambda g, x, y: g * (1.0 + y * y), real=True)
abs = _unary("abs", lambda d: _xp(d).abs(d), lambda g, x, y: g * sign(x), arrays=False)  # noqa: A001


def scaled_product(a, b, c: float):
    """c·a·b in one op (the backward of ``square`` is 2·g·x): d a = c·G·b, d b = c·G·a. Arrays
    in (a backward on arrays), an array out."""
    if not isinstance(a, Tensor):
        return _scaled(a, b, c)

    def bwd(G, o, need):
        return (
            unbroadcast(scaled_product(G, b, c), a) if need[0] else None,
            unbroadcast(scaled_product(G, a, c), b) if need[1] else None,
        )

    return record(_scaled(a.data, b.data, c), (a, b), bwd, "scaled_product")


def _scaled(ad, bd, c):
    out = ad * bd
    if out.ndim == 0:
        return out * c
    out *= c
    return out


def sign(x) -> Tensor:
    """-1, 0 or 1 (not differentiable: a constant to the graph)."""
    x = unary(x)
    return Tensor._make(_xp(x.data).sign(x.data))


def where(cond, a, b) -> Tensor:
    """``a`` where ``cond`` else ``b``, broadcasting all three; differentiable in ``a`` and ``b``."""
    c = cond.data if isinstance(cond, Tensor) else cond
    if isinstance(a, Tensor) or not isinstance(b, Tensor):
        a, b, ad, bd = pair(a, b, "where")
    else:
        b, a, bd, ad = pair(b, a, "where")
    xp = _xp(ad if hasattr(ad, "shape") else bd)
    if not hasattr(c, "shape"):
        c = xp.asarray(c)
    try:
        out = xp.where(c, ad, bd)
    except ValueError as e:
        raise ValueError(
            f"where: shapes {tuple(c.shape)}, {getattr(ad, 'shape', ())} and {getattr(bd, 'shape', ())} "
            "cannot be broadcast together"
        ) from e
    cond_t = Tensor._make(c)
    return record(out, (a, b, cond_t), _where_bwd, "where", _where_bwd)


def _where_bwd(g, out, need):
    # written for Tensors and arrays alike (the condition is a constant)
    a, b, cond = out._node.inputs
    return (
        unbroadcast(_select(cond, g, 0.0), a) if need[0] else None,
        unbroadcast(_select(cond, 0.0, g), b) if need[1] else None,
        None,
    )


def clip(x, clip_value_min, clip_value_max) -> Tensor:
    """Limit ``x`` to [min, max]; the gradient passes where min ≤ x ≤ max and is 0 outside."""
    x = unary(x)
    lo = clip_value_min.data if isinstance(clip_value_min, Tensor) else clip_value_min
    hi = clip_value_max.data if isinstance(clip_value_max, Tensor) else clip_value_max
    xp = _xp(x.data)
    out = xp.clip(x.data, lo, hi)
    if out.dtype != x.dtype:
        out = out.astype(x.dtype)
    return record(out, (x, lo, hi), _clip_bwd, "clip")


def _clip_bwd(g, out, need):
    x, lo, hi = out._node.inputs
    inside = (x >= lo).data & (x <= hi).data
    return where(Tensor._make(inside), g, 0.0), None, None


def cast(x, dtype) -> Tensor:
    x = unary(x)
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return record(x.data.astype(dtype), (x,), _cast_bwd, "cast")


def _cast_bwd(g, out, need):
    x = _x(out)
    return (cast(g, x.dtype) if is_float(x.dtype) else None,)
