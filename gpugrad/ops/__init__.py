"""All ops, and the Tensor operators and methods that call them."""

from __future__ import annotations

from .. import tensor
from ..tensor import Tensor
from . import (  # noqa: F401,E501
    activation,
    arrange,
    base,
    creation,
    decompose,
    differences,
    join,
    linalg,
    loss,
    math,
    math_extra,
    matrix,
    products,
    reduce,
    reduce_extra,
    shape,
    sorting,
)
from .activation import relu, sigmoid, tanh
from .arrange import (  # noqa: F401
    atleast_1d,
    atleast_2d,
    atleast_3d,
    diag,
    diagflat,
    diagonal,
    flatten,
    flip,
    fliplr,
    flipud,
    moveaxis,
    pad,
    ravel,
    repeat,
    roll,
    rollaxis,
    rot90,
    select,
    swapaxes,
    tile,
    trace,
    tril,
    triu,
)
from .differences import diff, gradient  # noqa: F401
from .join import (  # noqa: F401
    append,
    array_split,
    c_,
    column_stack,
    concatenate,
    dsplit,
    dstack,
    hsplit,
    hstack,
    r_,
    row_stack,
    split,
    vsplit,
    vstack,
)
from .linalg import matmul
from .math import (
    abs,
    add,
    clip,
    cos,
    divide,
    equal,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    pow,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tan,
    where,
)
from .math_extra import (  # noqa: F401
    angle,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    around,
    ceil,
    conj,
    conjugate,
    cosh,
    deg2rad,
    degrees,
    exp2,
    fix,
    floor,
    floor_divide,
    fmax,
    fmin,
    hypot,
    imag,
    isfinite,
    isinf,
    isnan,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    mod,
    nan_to_num,
    rad2deg,
    radians,
    real,
    real_if_close,
    reciprocal,
    remainder,
    rint,
    round,
    signbit,
    sinc,
    sinh,
    trunc,
)
from .matrix import reduction_norm as norm
from .products import cross, dot, einsum, inner, kron, outer, tensordot, vdot  # noqa: F401
from .reduce import logsumexp, max, mean, min, sum
from .reduce_extra import cumprod, cumsum, prod, std, var  # noqa: F401
from .search import argmax, argmin
from .shape import (
    broadcast_to,
    concat,
    expand_dims,
    getitem,
    matrix_transpose,
    reshape,
    squeeze,
    stack,
    transpose,
)
from .softmax import log_softmax, softmax
from .sorting import argpartition, argsort, partition, sort, take_along_axis  # noqa: F401


def _install():
    T = Tensor
    tensor.BOUND.update(to_device=shape.to_device, cast=math.cast, stack=base.stack_nested)
    tensor.BOUND.update({name: globals()[name] for name in tensor._OPERATOR_UFUNCS.values()})
    T.__add__ = add
    T.__radd__ = math._radd
    T.__sub__ = subtract
    T.__rsub__ = math._rsub
    T.__mul__ = multiply
    T.__rmul__ = math._rmul
    T.__truediv__ = divide
    T.__rtruediv__ = math._rdiv
    T.__pow__ = math._tensor_pow
    T.__rpow__ = math._rpow
    T.__matmul__ = matmul
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__neg__ = negative
    T.__abs__ = abs
    T.__lt__ = less
    T.__le__ = less_equal
    T.__gt__ = greater
    T.__ge__ = greater_equal
    T.__eq__ = equal
    T.__ne__ = not_equal
    T.__hash__ = lambda self: id(self)
    T.__getitem__ = getitem
    T.T = property(lambda self: transpose(self))
    T.mT = property(matrix_transpose)
    for name, fn in [
        ("sum", sum), ("mean", mean), ("max", max), ("min", min), ("logsumexp", logsumexp),
        ("norm", norm), ("exp", exp), ("log", log), ("log1p", log1p), ("expm1", expm1),
        ("sqrt", sqrt), ("square", square), ("sin", sin), ("cos", cos), ("tan", tan),
        ("abs", abs), ("sigmoid", sigmoid), ("tanh", tanh), ("relu", relu), ("softmax", softmax),
        ("log_softmax", log_softmax), ("matmul", matmul), ("clip", clip), ("squeeze", squeeze),
        ("expand_dims", expand_dims), ("broadcast_to", broadcast_to), ("pow", pow),
    ]:
        setattr(T, name, fn)
    T.reshape = lambda self, *dims: reshape(
        self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
    )
    T.transpose = lambda self, *perm: transpose(
        self, (perm[0] if len(perm) == 1 and not isinstance(perm[0], int) else perm) or None
    )
    T.view = T.reshape
    _install_numpy_methods(T)
    _install_torch_habits(T)


def _install_numpy_methods(T):
    """NumPy's ndarray methods and operators that the NumPy function set brings: ``%``, ``//``,
    ``t.prod()``, ``t.cumsum()``, ``t.std()`` (NumPy's ``ddof=0``), ``t.ravel()``..."""
    T.__mod__ = mod
    T.__rmod__ = math_extra._rmod
    T.__floordiv__ = floor_divide
    T.__rfloordiv__ = math_extra._rfloordiv
    for name, fn in [
        ("prod", prod), ("cumsum", cumsum), ("cumprod", cumprod), ("std", std), ("var", var),
        ("trace", trace), ("diagonal", diagonal), ("swapaxes", swapaxes), ("dot", dot), ("round", round),
        ("argsort", argsort),
    ]:
        setattr(T, name, fn)
    T.ravel = lambda self: ravel(self)
    T.flatten = lambda self: ravel(self)


def _install_torch_habits(T):
    """PyTorch spellings: ``argmax``/``argmin`` (``dim=`` or ``axis=``), ``unsqueeze``, ``float()``,
    ``double()``, and ``format(t, '.3f')`` for one-element tensors."""

    def _dim(axis, dim):
        return dim if axis is None else axis

    T.argmax = lambda self, axis=None, keepdims=False, dim=None: argmax(self, _dim(axis, dim), keepdims)
    T.argmin = lambda self, axis=None, keepdims=False, dim=None: argmin(self, _dim(axis, dim), keepdims)
    T.unsqueeze = lambda self, dim: expand_dims(self, dim)
    T.float = lambda self: self.astype("float32")
    T.double = lambda self: self.astype("float64")
    T.__format__ = _format


def _format(self, spec: str) -> str:
    if not spec:
        return str(self)
    if self.size == 1:  # as PyTorch: a format spec applies to the one value
        return format(self.item(), spec)
    raise TypeError(
        f"unsupported format string {spec!r} for a tensor of shape {self.shape}; "
        "format spec applies only to one-element tensors (use .numpy() or .tolist())"
    )


_install()
