"""The simulated ``cupy.ndarray`` and the call machinery of the simulated ``cupy`` functions.

A device array holds a NumPy array (its memory stands for device memory) and a device id. It is
not a NumPy array and refuses to become one implicitly, as CuPy's does: ``numpy.asarray`` raises
``TypeError``; ``.get()`` copies to the host. A NumPy array handed to a device function raises
``TypeError`` too (only ``asarray``/``array`` copy host data to the device). Every computing call
is one kernel launch for the counters; views (reshape, slices, transposes) launch nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _device as D

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Flags:
    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    @property
    def c_contiguous(self) -> bool:
        return self._a.flags.c_contiguous

    @property
    def f_contiguous(self) -> bool:
        return self._a.flags.f_contiguous

    @property
    def owndata(self) -> bool:
        return self._a.base is None

    def __getitem__(self, key: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


class ndarray:  # noqa: N801 - CuPy's name
    """A simulated ``cupy.ndarray``: ``ndarray(shape, dtype=float, memptr=None, strides=None, order='C')``."""

    __slots__ = ("_a", "_dev", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C") -> None:
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if memptr is None:
            memptr = D.malloc(n)
        mem = memptr.mem
        if mem is None:
            raise ValueError("the memory pointer has no allocation")
        offset = memptr.ptr - mem.ptr
        buf = mem._buf[offset:]
        if strides is None:
            arr = np.ndarray(shape, dtype, buffer=buf, order=order)
        else:
            arr = np.ndarray(shape, dtype, buffer=buf, strides=strides)
        self._a = arr
        self._dev = mem.device_id

    # ---------------------------------------------------------------- what it is

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))

    @property
    def device(self):
        from .cupy.cuda import Device  # noqa: PLC0415

        return Device(self._dev)

    @property
    def data(self) -> D.MemoryPointer:
        return D.MemoryPointer._at(D.address(self._a) if self._a.size else 0, self._dev)

    @property
    def base(self):
        return None if self._a.base is None else wrap_view(_root(self._a), self._dev)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        a = self._a
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "descr": a.dtype.descr,
            "data": (D.address(a) if a.size else 0, False),
            "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3,
            "stream": 1,
        }

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if dl_device is not None and tuple(dl_device) != (2, self._dev):
            raise BufferError("the simulated device exports DLPack on its own device only")
        # the capsule carries host memory: only the simulated device's from_dlpack may take it
        if max_version is None:
            return self._a.__dlpack__(stream=None)
        return self._a.__dlpack__(stream=None, max_version=max_version, copy=copy)

    def __repr__(self) -> str:
        return repr(self.get())

    def __str__(self) -> str:
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get() if self.ndim else self.item(), spec)

    # ---------------------------------------------------------------- to the host

    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        D.d2h(self.nbytes)
        if out is not None:
            if not isinstance(out, np.ndarray) or out.shape != self.shape:
                raise ValueError("out must be a NumPy array of the same shape")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        D.d2h(self.itemsize)
        return self._a.item()

    def tolist(self):
        return self.get().tolist()

    def tobytes(self, order="C") -> bytes:
        return self.get().tobytes(order)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. Use a.any() or a.all()"
            )
        return bool(self.item())

    def __index__(self) -> int:
        if self.ndim or self.dtype.kind not in "iub":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self.item())

    def set(self, arr, stream=None) -> None:
        """Copy the host array ``arr`` into this array."""
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape:
            raise ValueError("set takes a NumPy array of the same shape")
        D.h2d()
        self._a[...] = arr

    # ---------------------------------------------------------------- Python protocols

    def __len__(self) -> int:
        if not self.ndim:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if not self.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        k = unwrap_index(key)
        if _basic(k):
            items = k if isinstance(k, tuple) else (k,)
            if Ellipsis not in items:
                items = (*items, Ellipsis)  # a 0-d array rather than a NumPy scalar
            return wrap_view(self._a[items], self._dev)
        a = self._a
        return computed("cupy_getitem", lambda: np.asarray(a[k]), self._dev, self.nbytes)

    def __setitem__(self, key, value) -> None:
        k = unwrap_index(key)
        v = value._a if isinstance(value, ndarray) else value
        if isinstance(value, np.ndarray):
            D.h2d()  # CuPy copies a host array in
        elif not isinstance(value, ndarray) and not np.isscalar(value) and value is not None:
            v = np.asarray(value)
            if v.dtype == object:
                raise TypeError(f"Unsupported type {type(value)}")
        a = self._a
        written = a[k].nbytes if _basic(k) else np.asarray(v).nbytes

        def go() -> None:
            a[k] = v

        D.run("cupy_setitem", go, getattr(v, "nbytes", 0), written)

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_rebuild, (self.get(), self._dev))

    # ---------------------------------------------------------------- NumPy dispatch

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import cupy as cp  # noqa: PLC0415

        out = kwargs.get("out", ())
        for x in (*inputs, *(out if isinstance(out, tuple) else (out,))):
            if _foreign_ufunc(x):
                return NotImplemented  # another array type's own __array_ufunc__ takes it, as with CuPy
        fn = getattr(cp, ufunc.__name__, None)
        if fn is None:
            return NotImplemented
        if method == "__call__":
            return fn(*inputs, **kwargs)
        return getattr(fn, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import cupy as cp  # noqa: PLC0415

        mod = cp
        for part in func.__module__.split(".")[1:]:
            if part in ("_core", "core") or part.startswith("_"):
                continue
            mod = getattr(mod, part, None)
            if mod is None:
                return NotImplemented
        fn = getattr(mod, func.__name__, None)
        if fn is None:
            return NotImplemented
        return fn(*args, **kwargs)

    # ---------------------------------------------------------------- methods

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dtype = np.dtype(dtype)
        if not copy and dtype == self.dtype:
            return self
        a = self._a
        return computed("cupy_astype", lambda: a.astype(dtype, order=order, copy=True), self._dev, self.nbytes)

    def copy(self, order="C"):
        a = self._a
        return computed("cupy_copy", lambda: a.copy(order=order), self._dev, self.nbytes)

    def view(self, dtype=None, type=None):  # noqa: A002 - CuPy's name
        return wrap_view(self._a.view() if dtype is None else self._a.view(dtype), self._dev)

    def fill(self, value) -> None:
        a = self._a
        v = value._a if isinstance(value, ndarray) else value

        def go() -> None:
            a.fill(v)

        D.run("cupy_fill", go, 0, a.nbytes)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not np.isscalar(shape[0]):
            shape = tuple(shape[0])
        return call("reshape", np.reshape, (self, shape), {"order": order})

    def __getattr__(self, name: str):
        if name in _METHODS:
            fn = getattr(np.ndarray, name)
            return lambda *args, **kwargs: call(name, fn, (self, *args), kwargs)
        raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")

    T = property(lambda self: wrap_view(self._a.T, self._dev))
    mT = property(lambda self: wrap_view(np.swapaxes(self._a, -1, -2), self._dev))

    @property
    def real(self):
        return wrap_view(self._a.real, self._dev) if self.dtype.kind == "c" else self

    @property
    def imag(self):
        return call("imag", np.imag, (self,), {})

    def __neg__(self):
        return _ufunc_call("negative", (self,))

    def __pos__(self):
        return _ufunc_call("positive", (self,))

    def __abs__(self):
        return _ufunc_call("absolute", (self,))

    def __invert__(self):
        return _ufunc_call("invert", (self,))


#: methods of cupy.ndarray run as the NumPy method of the same name
_METHODS = frozenset(
    "all any argmax argmin argpartition argsort choose clip compress conj conjugate cumprod cumsum diagonal dot "
    "flatten max mean min nonzero partition prod ptp put ravel repeat round searchsorted sort squeeze std sum "
    "swapaxes take trace transpose var".split()
)

_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "true_divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "power",
    "matmul": "matmul",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
    "lshift": "left_shift",
    "rshift": "right_shift",
    "divmod": "divmod",
}
_COMPARE = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal", "ne": "not_equal"}


def _foreign_ufunc(x) -> bool:
    """Whether ``x`` is another array type with a NumPy ufunc protocol of its own."""
    return not isinstance(x, (ndarray, np.ndarray, np.generic)) and hasattr(x, "__array_ufunc__")


def _ufunc_call(name: str, args: tuple, **kwargs):
    from . import cupy as cp  # noqa: PLC0415

    return getattr(cp, name)(*args, **kwargs)


def _binary(op: str, reflected: bool = False, inplace: bool = False):
    name = _BINARY.get(op) or _COMPARE[op]

    def method(self, other):
        args = (other, self) if reflected else (self, other)
        kw = {"out": self} if inplace else {}
        if _foreign_ufunc(other):
            # CuPy defers to another array type through NumPy's ufunc protocol (NEP 13)
            if type(other).__array_ufunc__ is None:
                return NotImplemented
            return getattr(np, name)(*args, **kw)
        if not isinstance(other, (ndarray, np.ndarray, int, float, complex, bool, np.generic)):
            if getattr(other, "__array_priority__", 0) > ndarray.__array_priority__:
                return NotImplemented
        return _ufunc_call(name, args, **kw)

    return method


for _op in (*_BINARY, *_COMPARE):
    setattr(ndarray, f"__{_op}__", _binary(_op))
    if _op in _BINARY:
        setattr(ndarray, f"__r{_op}__", _binary(_op, reflected=True))
        if _op != "divmod":
            setattr(ndarray, f"__i{_op}__", _binary(_op, inplace=True))


def _rebuild(host: np.ndarray, dev: int) -> ndarray:
    return to_device(host, dev)


# ------------------------------------------------------------------------------ wrapping


def wrap_view(a: np.ndarray, dev: int) -> ndarray:
    """A device array over existing device memory (no allocation, no launch)."""
    obj = ndarray.__new__(ndarray)
    obj._a = a
    obj._dev = dev
    return obj


def new_result(name: str, res: np.ndarray, dev: int, read: int, *, launch: bool = True) -> ndarray:
    """A device array over ``res``, memory just computed by a kernel: one allocation, one launch."""
    root = _root(res)
    try:
        D.adopt(root)
    except D.OutOfMemoryError:
        del res, root
        raise
    cap = D.capturing()
    if launch and cap is None:
        D.count_launch(name, read, res.nbytes)
    return wrap_view(res, dev)


def computed(name: str, compute: Callable, dev: int, read: int) -> ndarray:
    """:func:`new_result` of ``compute()``, a kernel's work: while a CUDA graph is captured the
    kernel is recorded too, so each launch of the graph computes it again into the same memory."""
    out = new_result(name, compute(), dev, read)
    cap = D.capturing()
    if cap is not None:
        dst = out._a

        def again() -> None:
            np.copyto(dst, compute(), casting="unsafe")

        cap.record(name, again, read, dst.nbytes)
    return out


def to_device(data, dev: int, dtype=None, copy: bool = True, order: str = "K") -> ndarray:
    """Host data (a NumPy array, scalar or nested list) copied to device ``dev``."""
    a = np.array(data, dtype=dtype, copy=True, order=order)
    if a.dtype == object:
        raise ValueError("Unsupported dtype object")
    if isinstance(data, np.ndarray) or (isinstance(data, (list, tuple)) and a.size):
        D.h2d()
    return new_result("cupy_h2d", a, dev, 0, launch=False)


def _basic(k) -> bool:
    items = k if isinstance(k, tuple) else (k,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def unwrap_index(key):
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, np.ndarray):
        D.h2d()  # CuPy copies a host index array to the device
        return key
    if isinstance(key, tuple):
        return tuple(unwrap_index(k) for k in key)
    if isinstance(key, list):
        return np.asarray(key)
    return key


class _Inputs:
    __slots__ = ("arrays", "dev")

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.dev: int | None = None


def _unwrap(x, ins: _Inputs, host_ok: bool):
    if isinstance(x, ndarray):
        if ins.dev is None:
            ins.dev = x._dev
        elif ins.dev != x._dev:
            raise ValueError(
                f"The device where the array resides ({x._dev}) is different from the current device ({ins.dev})."
            )
        ins.arrays.append(x._a)
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok:
            return x
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (list, tuple)) and x and any(isinstance(e, (ndarray, np.ndarray, list, tuple)) for e in x):
        return type(x)(_unwrap(e, ins, host_ok) for e in x)
    if hasattr(x, "__cuda_array_interface__") and not isinstance(x, ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    return x


def call(name: str, fn: Callable, args: tuple, kwargs: dict, *, host_ok: bool = False):
    """Run NumPy's ``fn`` on the device arrays in ``args``/``kwargs``: results become device arrays
    (NumPy scalars become 0-d device arrays, as CuPy's reductions return); an ``out=`` device array
    is written in place (recorded, not run, while a CUDA graph is captured)."""
    ins = _Inputs()
    uargs = tuple(_unwrap(a, ins, host_ok) for a in args)
    out = kwargs.get("out")
    ukw = {k: _unwrap(v, ins, host_ok) for k, v in kwargs.items()}
    dev = D.state.device if ins.dev is None else ins.dev
    read = sum(a.nbytes for a in ins.arrays)
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        written = sum(o.nbytes for o in outs if isinstance(o, ndarray))
        D.run(f"cupy_{name}", lambda: fn(*uargs, **ukw), read - written, written)
        return out
    cap = D.capturing()
    if cap is not None:
        with np.errstate(all="ignore"):
            res = fn(*uargs, **ukw)
    else:
        res = fn(*uargs, **ukw)
    roots = {id(_root(a)) for a in ins.arrays}
    result = _wrap_result(name, res, dev, roots, read)
    if cap is not None:
        fresh = [r._a for r in _flat(result) if isinstance(r, ndarray) and id(_root(r._a)) not in roots]
        if fresh:

            def again() -> None:
                new = fn(*uargs, **ukw)
                for dst, src in zip(fresh, (r for r in _flat_np(new) if r is not None), strict=False):
                    np.copyto(dst, src, casting="unsafe")

            cap.record(f"cupy_{name}", again, read, sum(f.nbytes for f in fresh))
    return result


def _flat(x):
    if isinstance(x, (tuple, list)):
        for e in x:
            yield from _flat(e)
    else:
        yield x


def _flat_np(x):
    if isinstance(x, (tuple, list)):
        for e in x:
            yield from _flat_np(e)
    elif isinstance(x, np.ndarray):
        yield x
    elif isinstance(x, np.generic):
        yield np.asarray(x)


def _wrap_result(name: str, res, dev: int, roots: set[int], read: int):
    if isinstance(res, np.ndarray):
        if id(_root(res)) in roots:
            return wrap_view(res, dev)
        return new_result(f"cupy_{name}", res, dev, read)
    if isinstance(res, np.generic):
        return new_result(f"cupy_{name}", np.asarray(res), dev, read)
    if isinstance(res, tuple) and any(isinstance(r, (np.ndarray, np.generic)) for r in res):
        return tuple(_wrap_result(name, r, dev, roots, 0) for r in res)
    if isinstance(res, list) and any(isinstance(r, np.ndarray) for r in res):
        return [_wrap_result(name, r, dev, roots, 0) for r in res]
    return res
