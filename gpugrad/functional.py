"""JAX's way of asking for gradients: transformations of functions."""

from __future__ import annotations

from .tape import GradientTape
from .tensor import Tensor, is_float

__all__ = ["grad", "value_and_grad", "jacobian", "hessian", "hvp"]


def _argnums(argnums, n):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not -n <= a < n:
            raise TypeError(  # JAX raises a TypeError here
                f"differentiating with respect to argnums={argnums} requires at least {a + 1 if a >= 0 else -a} "
                f"positional argument(s), but the function was called with {n}"
            )
    return single, tuple(a % n for a in nums)


def _diff_args(args, nums):
    args = list(args)
    for a in nums:
        x = args[a]
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if not is_float(x.dtype):
            raise TypeError(f"argument {a} has dtype {x.dtype}: only floating inputs can be differentiated")
        args[a] = x
    return args


def _value_and_grad(f, args, argnums, has_aux):
    single, nums = _argnums(argnums, len(args))
    args = _diff_args(args, nums)
    xs = [args[a] for a in nums]
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(xs)
        out = f(*args)
    value, aux = out if has_aux else (out, None)
    if not isinstance(value, Tensor) or value.size != 1:
        shape = getattr(value, "shape", None)
        raise TypeError(f"grad requires a function with a scalar output, got shape {shape}; use jacobian")
    gs = tape.gradient(value, xs, unconnected_gradients="zero")
    g = gs[0] if single else tuple(gs)
    return (value, aux, g)


def grad(f, argnums=0, has_aux: bool = False):
    """``grad(f)(*args)``: the gradient of the scalar ``f`` with respect to ``args[argnums]``."""

    def gf(*args):
        value, aux, g = _value_and_grad(f, args, argnums, has_aux)
        return (g, aux) if has_aux else g

    return gf


def value_and_grad(f, argnums=0, has_aux: bool = False):
    """``value_and_grad(f)(*args)`` -> ``(f(*args), grad(f)(*args))``."""

    def vg(*args):
        value, aux, g = _value_and_grad(f, args, argnums, has_aux)
        return ((value, aux), g) if has_aux else (value, g)

    return vg


def jacobian(f, argnums=0):
    """``jacobian(f)(*args)[i..., j...] = d f(args)[i...] / d args[argnums][j...]``.

    A function returning a tuple (or list) of tensors gets one Jacobian per output, so that
    ``hessian(f, argnums=(0, 1))[i][j]`` is ``d² f / d args[i] d args[j]``, as JAX.
    """

    def jf(*args):
        single, nums = _argnums(argnums, len(args))
        args = _diff_args(args, nums)
        xs = [args[a] for a in nums]
        with GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(xs)
            y = f(*args)
        ys = y if isinstance(y, (tuple, list)) else [y]
        out = []
        for yi in ys:
            js = tape.jacobian(yi, xs, unconnected_gradients="zero")
            out.append(js[0] if single else tuple(js))
        return type(y)(out) if isinstance(y, (tuple, list)) else out[0]

    return jf


def hessian(f, argnums=0):
    """The matrix of second derivatives: ``jacobian(grad(f))``."""
    return jacobian(grad(f, argnums), argnums)


def hvp(f, x, v):
    """The Hessian of scalar ``f`` at ``x`` times ``v``, by differentiating ⟨∇f(x), v⟩ again."""
    x = _diff_args([x], (0,))[0]
    v = v if isinstance(v, Tensor) else Tensor(v, dtype=x.dtype, device=x.device)
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        g = grad(f)(x)
        s = (g * v).sum()
    return tape.gradient(s, x, unconnected_gradients="zero")
