"""The part of CuPy's namespace that runs on the simulated device (``import cupy`` gives this module
while ``GPUGRAD_SIMULATE_CUDA=1``).

Functions take and return simulated device arrays and compute with NumPy. Only names CuPy has are
provided; a NumPy array where a device array is expected raises ``TypeError`` as in CuPy.
"""

from __future__ import annotations

import numpy as np

from .. import _device as _D
from .._array import call as _call
from .._array import computed as _computed
from .._array import ndarray
from .._array import new_result as _new_result
from .._array import to_device as _to_device
from .._array import unwrap_index as _unwrap_index
from .._array import wrap_view as _wrap_view
from . import cuda, linalg, random, testing  # noqa: F401

__version__ = "14.0.0+simulated"

# dtypes and constants, as CuPy re-exports them
from numpy import (  # noqa: E402, F401
    bool_,
    complex64,
    complex128,
    e,
    euler_gamma,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    inf,
    int8,
    int16,
    int32,
    int64,
    intp,
    nan,
    newaxis,
    pi,
    uint8,
    uint16,
    uint32,
    uint64,
)

bool = np.bool_  # noqa: A001 - CuPy's namespace has it
float_ = np.float64
int_ = np.int64
complex_ = np.complex128
result_type = np.result_type
promote_types = np.promote_types
can_cast = np.can_cast
issubdtype = np.issubdtype
isscalar = np.isscalar
ndim = np.ndim
shape = np.shape
size = np.size


class ufunc:  # noqa: N801 - CuPy's name
    """A simulated ``cupy.ufunc``: one kernel launch per call."""

    def __init__(self, uf: np.ufunc, name: str) -> None:
        self._uf = uf
        self.__name__ = name
        self.nin, self.nout, self.nargs = uf.nin, uf.nout, uf.nargs
        self.types = uf.types

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        return _call(self.__name__, self._uf, args, kwargs)

    def reduce(self, *args, **kwargs):
        return _call(f"{self.__name__}_reduce", self._uf.reduce, args, kwargs)

    def accumulate(self, *args, **kwargs):
        return _call(f"{self.__name__}_accumulate", self._uf.accumulate, args, kwargs)

    def reduceat(self, *args, **kwargs):
        return _call(f"{self.__name__}_reduceat", self._uf.reduceat, args, kwargs)

    def outer(self, *args, **kwargs):
        return _call(f"{self.__name__}_outer", self._uf.outer, args, kwargs)

    def at(self, a, indices, b=None) -> None:
        """In place on ``a``: ``a[indices] op= b``, repeated indices accumulating."""
        if not isinstance(a, ndarray):
            raise TypeError(f"Unsupported type {type(a)}")
        idx = _unwrap_index(indices)  # host index arrays are copied over, as in indexing
        uf = self._uf
        if b is None:
            _call(f"{self.__name__}_at", lambda x, out=None: uf.at(x, idx), (a,), {"out": a})
        else:
            _call(f"{self.__name__}_at", lambda x, y, out=None: uf.at(x, idx, y), (a, b), {"out": a})


_UFUNCS = (
    "add subtract multiply divide true_divide floor_divide negative positive power float_power remainder mod fmod "
    "divmod absolute abs fabs rint sign exp exp2 log log2 log10 expm1 log1p logaddexp logaddexp2 sqrt square cbrt "
    "reciprocal sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh deg2rad "
    "rad2deg degrees radians greater greater_equal less less_equal not_equal equal logical_and logical_or "
    "logical_xor logical_not maximum minimum fmax fmin isfinite isinf isnan signbit copysign nextafter ldexp frexp "
    "modf floor ceil trunc bitwise_and bitwise_or bitwise_xor bitwise_not invert left_shift right_shift gcd lcm "
    "heaviside conj conjugate matmul"
)
for _name in _UFUNCS.split():
    globals()[_name] = ufunc(getattr(np, _name), _name)


def _function(name: str, fn=None):
    fn = getattr(np, name) if fn is None else fn

    def f(*args, **kwargs):
        return _call(name, fn, args, kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Simulated ``cupy.{name}`` (NumPy's, on device arrays)."
    return f


_FUNCTIONS = (
    "all allclose amax amin any append argmax argmin argsort argwhere around array_equal array_split "
    "atleast_1d atleast_2d atleast_3d average bincount broadcast_arrays broadcast_to clip column_stack "
    "concatenate copy count_nonzero cov cross cumprod cumsum diag diagonal diff dot dsplit dstack einsum "
    "expand_dims extract flatnonzero flip fliplr flipud histogram hsplit hstack inner isclose kron "
    "max mean median min moveaxis nanargmax nanargmin nancumsum nanmax nanmean nanmin nanprod nanstd nansum "
    "nanvar nonzero outer pad percentile prod ptp put_along_axis quantile ravel repeat reshape resize roll rollaxis "
    "rot90 round searchsorted sort split squeeze stack std sum swapaxes take take_along_axis tensordot tile trace "
    "transpose tril triu unique var vdot vsplit vstack where nan_to_num real imag angle cumulative_sum "
    "may_share_memory shares_memory packbits unpackbits select piecewise trim_zeros fix sinc i0 interp convolve "
    "correlate corrcoef lexsort partition argpartition unravel_index ravel_multi_index indices ix_ meshgrid "
    "place putmask copyto compress choose fill_diagonal diag_indices tril_indices triu_indices apply_along_axis "
    "array_equiv isin isreal iscomplex isrealobj iscomplexobj"
)
for _name in _FUNCTIONS.split():
    if hasattr(np, _name):
        globals()[_name] = _function(_name)


def copyto(dst, src, casting="same_kind", where=True) -> None:
    """``dst[...] = src`` on the device (``src`` a device array or a scalar)."""
    if not isinstance(dst, ndarray):
        raise TypeError(f"Unsupported type {type(dst)}")
    _call(
        "copyto",
        lambda d, s, out=None, **kw: np.copyto(d, s, **kw),
        (dst, src),
        {"out": dst, "casting": casting, "where": where},
    )


def put_along_axis(arr, indices, values, axis) -> None:
    _call(
        "put_along_axis",
        lambda a, i, v, out=None: np.put_along_axis(a, i, v, axis),
        (arr, indices, values),
        {"out": arr},
    )


# ------------------------------------------------------------------------------ making arrays


def _current() -> int:
    return _D.state.device


def empty(shape, dtype=float, order="C") -> ndarray:
    return ndarray(shape, dtype, order=order)


def zeros(shape, dtype=float, order="C") -> ndarray:
    a = empty(shape, dtype, order)
    a.fill(0)
    return a


def ones(shape, dtype=float, order="C") -> ndarray:
    a = empty(shape, dtype, order)
    a.fill(1)
    return a


def full(shape, fill_value, dtype=None, order="C") -> ndarray:
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, ndarray) else np.array(fill_value).dtype
    a = empty(shape, dtype, order)
    a.fill(fill_value)
    return a


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return _like_impl(prototype, dtype, shape, lambda s, d: empty(s, d))


def zeros_like(a, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return _like_impl(a, dtype, shape, lambda s, d: zeros(s, d))


def ones_like(a, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return _like_impl(a, dtype, shape, lambda s, d: ones(s, d))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return _like_impl(a, dtype, shape, lambda s, d: full(s, fill_value, d))


def _like_impl(a, dtype, shape, make) -> ndarray:
    if isinstance(a, np.ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    shp = np.shape(a) if not isinstance(a, ndarray) else a.shape
    dt = (a.dtype if isinstance(a, ndarray) else np.result_type(a)) if dtype is None else dtype
    if isinstance(a, ndarray):
        with cuda.Device(a._dev):
            return make(shp if shape is None else shape, dt)
    return make(shp if shape is None else shape, dt)


def _made(name: str, fn):
    def f(*args, **kwargs):
        kwargs.pop("like", None)
        # a fill is a kernel: a captured graph fills the array again at each launch
        return _computed(f"cupy_{name}", lambda: np.asarray(fn(*args, **kwargs)), _current(), 0)

    f.__name__ = f.__qualname__ = name
    return f


for _name in ("arange", "linspace", "logspace", "eye", "identity", "tri"):
    globals()[_name] = _made(_name, getattr(np, _name))


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False) -> ndarray:
    """``a`` on the current device: a device array as it is (cast when ``dtype`` differs), host data copied."""
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a.copy() if copy else a
        return a.astype(dtype)
    if hasattr(a, "__cuda_array_interface__"):
        raise TypeError(f"Unsupported type {type(a)}")
    return _to_device(a, _current(), dtype=dtype, order=order or "K")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False) -> ndarray:
    if isinstance(obj, ndarray):
        res = obj.astype(obj.dtype if dtype is None else dtype, copy=copy) if copy or dtype else obj
    else:
        res = _to_device(obj, _current(), dtype=dtype, order=order)
    while res.ndim < ndmin:
        res = res[None]
    return res


asanyarray = asarray


def ascontiguousarray(a, dtype=None) -> ndarray:
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return _call("ascontiguousarray", np.ascontiguousarray, (a,), {"dtype": dtype})


def asfortranarray(a, dtype=None) -> ndarray:
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    return _call("asfortranarray", np.asfortranarray, (a,), {"dtype": dtype})


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A host copy of ``a`` (``a`` itself when it is not a device array)."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    if hasattr(a, "__cuda_array_interface__"):
        raise TypeError(f"Unsupported type {type(a)}")
    return np.asarray(a, order=order)


def get_array_module(*args):
    """This module where an argument is a device array, else numpy."""
    return _self() if any(isinstance(a, ndarray) for a in args) else np


def _self():
    import sys  # noqa: PLC0415

    return sys.modules[__name__]


def from_dlpack(x) -> ndarray:
    """A device array sharing the memory of ``x`` (a simulated device array or its DLPack capsule
    exporter); host (CPU) DLPack data is refused as CuPy refuses it."""
    if isinstance(x, ndarray):
        return _wrap_view(x._a, x._dev)
    dev = getattr(x, "__dlpack_device__", None)
    if dev is None:
        raise TypeError(f"Unsupported type {type(x)}")
    kind, idx = dev()
    if int(kind) != 2:
        raise RuntimeError("CuPy can only import DLPack tensors that reside on a CUDA device")
    # a simulated device's capsule holds host memory: NumPy reads it once told so
    return _wrap_view(np.from_dlpack(_HostCapsule(x)), int(idx))


class _HostCapsule:
    def __init__(self, producer) -> None:
        self._producer = producer

    def __dlpack__(self, **kwargs):
        kwargs.pop("dl_device", None)
        try:
            return self._producer.__dlpack__(**kwargs)
        except TypeError:  # a producer of the older protocol
            return self._producer.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


fromDlpack = from_dlpack  # noqa: N816 - CuPy's old name


def get_default_memory_pool():
    return cuda.memory._default_pool


def get_default_pinned_memory_pool():
    return cuda.memory._pinned_pool


def fuse(*args, **kwargs):
    """``cupy.fuse``: on the simulated device, the function as it is."""
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        return args[0]
    return lambda f: f


from .._raw import RawKernel, RawModule  # noqa: E402, F401

dtype = np.dtype

del _name
