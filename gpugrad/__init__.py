"""gpugrad: array automatic differentiation on NumPy (CPU) and CuPy (CUDA), to any order."""

from __future__ import annotations

from . import autograd, callbacks, cuda, distributed, linalg, losses, metrics, nn, optimizers, random, testing, tree  # noqa: F401,E501
from .backend import default_device, device, set_default_device
from .custom import custom_gradient, custom_vjp
from .functional import (
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
)
from .graph import enable_grad, no_grad
from .jit import TracingError, jit
from .ops import (
    abs,
    add,
    angle,
    append,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    argmax,
    argmin,
    argpartition,
    argsort,
    around,
    array_split,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    broadcast_to,
    c_,
    ceil,
    clip,
    column_stack,
    concat,
    concatenate,
    conj,
    conjugate,
    cos,
    cosh,
    cross,
    cumprod,
    cumsum,
    deg2rad,
    degrees,
    diag,
    diagflat,
    diagonal,
    diff,
    divide,
    dot,
    dsplit,
    dstack,
    einsum,
    equal,
    exp,
    exp2,
    expand_dims,
    expm1,
    fix,
    flatten,
    flip,
    fliplr,
    flipud,
    floor,
    floor_divide,
    fmax,
    fmin,
    gradient,
    greater,
    greater_equal,
    hsplit,
    hstack,
    hypot,
    imag,
    inner,
    isfinite,
    isinf,
    isnan,
    kron,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    log_softmax,
    logaddexp,
    logaddexp2,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mod,
    moveaxis,
    multiply,
    nan_to_num,
    negative,
    norm,
    not_equal,
    outer,
    pad,
    partition,
    pow,
    prod,
    r_,
    rad2deg,
    radians,
    ravel,
    real,
    real_if_close,
    reciprocal,
    relu,
    remainder,
    repeat,
    reshape,
    rint,
    roll,
    rollaxis,
    rot90,
    round,
    row_stack,
    select,
    sigmoid,
    sign,
    signbit,
    sin,
    sinc,
    sinh,
    softmax,
    sort,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    subtract,
    sum,
    swapaxes,
    take_along_axis,
    tan,
    tanh,
    tensordot,
    tile,
    trace,
    transpose,
    tril,
    triu,
    trunc,
    var,
    vdot,
    vsplit,
    vstack,
    where,
)
from .ops.activation_extra import elu, erf, gelu, leaky_relu, silu, softplus, swish
from .ops.creation import (
    arange,
    asarray,
    constant,
    eye,
    from_numpy,
    full,
    linspace,
    ones,
    ones_like,
    tensor,
    zeros,
    zeros_like,
)
from .ops.op import Op
from .ops.shape import one_hot, unstack
from .tape import GradientTape
from .tensor import Tensor, Variable

__version__ = "0.1.0"

float16 = "float16"
float32 = "float32"
float64 = "float64"
int32 = "int32"
int64 = "int64"
bool_ = "bool"


cat = concat  # PyTorch's name
power = pow  # NumPy's names
true_divide = divide
absolute = abs
fabs = abs
amax = max
amin = min


def manual_seed(seed: int) -> None:
    """PyTorch's name for :func:`gpugrad.random.seed`: reseed every backend's generator."""
    random.seed(seed)


def from_dlpack(x) -> Tensor:
    """A Tensor sharing memory with a DLPack-capable array (PyTorch, JAX, CuPy, NumPy)."""
    return asarray(x)


def reduce_sum(x, axis=None, keepdims=False):
    return sum(x, axis=axis, keepdims=keepdims)


def reduce_mean(x, axis=None, keepdims=False):
    return mean(x, axis=axis, keepdims=keepdims)


def reduce_max(x, axis=None, keepdims=False):
    return max(x, axis=axis, keepdims=keepdims)


def reduce_min(x, axis=None, keepdims=False):
    return min(x, axis=axis, keepdims=keepdims)
