"""Tensor and Variable: an array on one device plus the few fields the graph needs.

Operators and math methods are attached by :mod:`gpugrad.ops`, and the few functions the methods
here call are bound into :data:`BOUND` by the modules above, which keeps this module free of import
cycles. A Tensor's array is never written in place; a Variable's ``assign`` swaps in a new
array and bumps a version counter, so a recorded graph that still needs the old value raises
instead of giving a wrong gradient.
"""

from __future__ import annotations

import sys
import weakref

import numpy as np

from . import backend

FLOAT_KINDS = "fc"
_SOLE_OWNER = 3  # sys.getrefcount(d) in Variable._update: the slot, the local name, the argument
DEFAULT_FLOAT = np.dtype(np.float32)
LIVE_VARIABLES: weakref.WeakSet = weakref.WeakSet()  # every Variable alive (gg.jit reads them as state)
GRAD_LEAVES: weakref.WeakSet = weakref.WeakSet()  # Tensors made to require grad (gg.jit reads their .grad)
NEW_VARIABLE_HOOK = None  # set by gg.jit while it traces: Variables made then become its state too
#: what the layers above bind here when they load, so this module imports none of them:
#: ``gpugrad.ops`` binds 'to_device', 'cast' and the ops of NumPy's operator ufuncs (by op name),
#: ``gpugrad.autograd`` binds 'backward'
BOUND: dict = {}


def is_float(dtype) -> bool:
    return dtype.kind in FLOAT_KINDS


class Tensor:
    """An immutable array value on one device (``'cpu'`` for NumPy, ``'cuda:N'`` for CuPy)."""

    __slots__ = ("data", "_node", "_rg", "_tapes", "_grad", "__weakref__")
    _is_var = False
    _version = 0

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        arr = _to_array(data, dtype, device, what=type(self).__name__)
        self.data = arr
        self._node = None
        self._rg = False
        self._tapes = None
        self._grad = None
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data):
        """Wrap an array without any checks (the ops' fast path)."""
        t = object.__new__(Tensor)
        t.data = data
        t._node = None
        t._rg = False
        t._tapes = None
        t._grad = None
        return t

    # -- the usual attributes -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if not self.data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return backend.is_cupy_array(self.data)

    def numpy(self) -> np.ndarray:
        """The value as a host NumPy array: a read-only view of a CPU tensor's array (a Tensor
        never changes), a copy for GPU tensors and Variables."""
        d = self.data
        if backend.is_cupy_array(d):
            return backend.read(d)
        return np.array(d) if self._is_var else _readonly(d)

    def item(self):
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        if backend.is_cupy_array(self.data):
            raise TypeError(
                f"implicit conversion of a {self.device} tensor to a NumPy array is not allowed; "
                "call .numpy() or .cpu() first"
            )
        if copy or self._is_var:
            return np.array(self.data, dtype=dtype, copy=True)
        a = np.asarray(self.data, dtype=dtype)
        return _readonly(a) if a is self.data or a.base is self.data else a

    # -- NumPy functions ----------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``ndarray + Tensor`` (NumPy's operators, reflected) gives a recorded Tensor; any other
        ufunc (``np.exp(t)``, ``np.add.reduce``...) works as on the array: a value, not recorded."""
        if method == "__call__" and not kwargs and len(inputs) == 2:
            name = _OPERATOR_UFUNCS.get(ufunc.__name__)
            if name is not None:
                return BOUND[name](*inputs)
        if any(isinstance(o, Tensor) for o in kwargs.get("out", ())):
            raise TypeError(f"numpy.{ufunc.__name__}: a Tensor cannot be written to (out=); it is immutable")
        return getattr(ufunc, method)(*_host_args(inputs), **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """``np.mean(t, axis=0)``, ``np.sum``, ``np.max``, ``np.concatenate([t, u])``...: computed on
        the arrays, as NumPy would; a value, not recorded (use gpugrad's ops to differentiate)."""
        return func(*_host_args(args), **{k: _host_args(v) for k, v in kwargs.items()})

    def __dlpack__(self, *args, **kwargs):
        d = self.data
        if not hasattr(d, "__dlpack__"):
            d = np.asarray(d)
        return d.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        d = self.data
        if not hasattr(d, "__dlpack_device__"):
            d = np.asarray(d)
        return d.__dlpack_device__()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __hash__(self):
        return id(self)

    def __repr__(self):
        dev = self.device
        extra = f", device='{dev}'" if dev != "cpu" else ""
        if self._rg:
            extra += ", requires_grad=True"
        body = np.array2string(self.numpy(), separator=", ", prefix=" " * 7)
        return f"{type(self).__name__}({body}, shape={self.shape}, dtype={self.dtype}{extra})"

    # -- devices ----------------------------------------------------------------------------------
    def to(self, device=None, dtype=None) -> Tensor:
        """A copy on ``device`` (and/or cast to ``dtype``); gradients flow through the move."""
        out = self
        if device is not None:
            out = BOUND["to_device"](out, backend.normalize_device(device))
        if dtype is not None:
            out = out.astype(dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        return self.to("cuda" if index is None else f"cuda:{index}")

    # -- autograd (PyTorch spelling) ----------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    @property
    def grad(self):
        """The gradient ``backward`` accumulated (None before). Assigning one whose shape, dtype or
        device differs from this tensor's raises, as in PyTorch."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            _check_grad(self, value)
        self._grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_float(self.dtype):
            raise RuntimeError(
                f"only tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        if not requires_grad and self._node is not None and self._rg:
            raise RuntimeError(
                "requires_grad can only be switched off on leaf tensors; use .detach() instead"
            )
        self._rg = bool(requires_grad)
        if requires_grad and not self._is_var:
            GRAD_LEAVES.add(self)
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None or not self._rg

    @property
    def grad_fn(self):
        n = self._node
        return n if (n is not None and self._rg) else None

    def detach(self) -> Tensor:
        """The same value, cut from every graph."""
        return Tensor._make(self.data)

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
        BOUND["backward"](self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def astype(self, dtype) -> Tensor:
        return BOUND["cast"](self, dtype)


class Variable(Tensor):
    """A mutable Tensor (TensorFlow's ``tf.Variable``); trainable ones are watched by tapes.

    ``assign`` swaps in a new array, so tensors computed earlier keep their values; a graph that
    saved the old value raises a RuntimeError when it is differentiated afterwards.
    """

    __slots__ = ("trainable", "name", "_version")
    _is_var = True

    def __init__(self, value, trainable: bool = True, name: str | None = None, dtype=None, device=None):
        if isinstance(value, Tensor):
            value = value.data
        arr = _to_array(value, dtype, device, what="Variable")  # always its own copy
        if trainable and not is_float(arr.dtype):
            raise TypeError(f"a trainable Variable must have a floating dtype, got {arr.dtype}")
        self.data = arr
        self._node = None
        self._rg = False
        self._tapes = None
        self._grad = None
        self.trainable = bool(trainable)
        self.name = name
        self._version = 0
        LIVE_VARIABLES.add(self)
        if NEW_VARIABLE_HOOK is not None:
            NEW_VARIABLE_HOOK(self)

    def _set(self, arr) -> Variable:
        self.data = arr
        self._version += 1
        return self

    def _value_like(self, value):
        if isinstance(value, Tensor):
            value = value.data
        d = self.data
        if type(value) is type(d) and value.shape == d.shape and value.dtype == d.dtype:
            return value
        if (
            hasattr(value, "shape")
            and not isinstance(value, (np.ndarray, np.generic))  # host data is copied over, as a list is
            and backend.device_of(value) != self.device
        ):
            raise RuntimeError(
                f"cannot assign a value on {backend.device_of(value)} to a Variable on {self.device}"
            )
        if value is None or isinstance(value, (str, bytes, complex)):
            raise _refuse("Variable.assign", value)
        if not hasattr(value, "dtype"):  # a list: refuse what is not numbers before the cast
            value = check_kind(np.asarray(value), "Variable.assign", value)
        else:
            check_kind(value, "Variable.assign", value)
        xp = backend.get_array_module(self.data)
        arr = xp.asarray(value, dtype=self.dtype)
        if arr.shape != self.shape:
            raise ValueError(f"cannot assign a value of shape {arr.shape} to a Variable of shape {self.shape}")
        return arr

    def assign(self, value) -> Variable:
        return self._set(self._value_like(value).copy())

    def assign_add(self, delta) -> Variable:
        return self._update(np.add, self._value_like(delta))

    def assign_sub(self, delta) -> Variable:
        return self._update(np.subtract, self._value_like(delta))

    def _update(self, ufunc, v) -> Variable:
        d = self.data
        # Write in place only where nothing else can see the buffer: a NumPy array whose sole
        # reference is this Variable (a view, an alias or a saved copy would raise the count).
        # Elsewhere a new array is swapped in, so earlier results keep their values.
        if type(d) is np.ndarray and sys.getrefcount(d) <= _SOLE_OWNER and d.flags.writeable:
            ufunc(d, v, out=d)
            self._version += 1
            return self
        return self._set(ufunc(d, v))

    def __repr__(self):
        return super().__repr__().replace("Variable(", f"Variable(name={self.name!r}, ", 1)


# Kinds a Tensor may hold: bool, signed and unsigned integers, floats. None, strings, objects and
# complex numbers are refused at the door, so no op ever guesses what they mean.
_KINDS = "biuf"


def _refuse(what: str, data, dtype=None) -> TypeError:
    kind = np.dtype(dtype).kind if dtype is not None else None
    if kind == "c" or isinstance(data, complex):
        why = (f"complex values ({dtype if dtype is not None else 'a Python complex'}) are not "
               "supported; gpugrad differentiates real tensors only")
    elif data is None:
        why = "got None where a tensor, an array or a number was expected"
    elif isinstance(data, (str, bytes)):
        why = f"got a {type(data).__name__} ({data[:20]!r}), not a number"
    else:
        why = f"got a {type(data).__name__} of dtype {dtype}, not numbers"
    return TypeError(f"{what}: {why}")


def check_kind(arr, what: str, data=None):
    """``arr`` if its dtype is bool, integer or float; a TypeError naming ``what`` otherwise."""
    if arr.dtype.kind not in _KINDS:
        raise _refuse(what, arr if data is None else data, arr.dtype)
    return arr


def _to_array(data, dtype=None, device=None, copy: bool = True, what: str = "Tensor"):
    """Turn a number, list, NumPy/CuPy array or Tensor into an array on ``device``.

    A NumPy or CuPy array (or a foreign DLPack array) is copied unless ``copy=False``, so a later
    write to it never reaches the Tensor. A Tensor's own array is shared: it never changes.
    """
    if isinstance(data, Tensor):
        copy = data._is_var  # a Variable's array may be updated in place; a Tensor's never changes
        data = data.data
    if data is None or isinstance(data, (str, bytes, complex)):
        raise _refuse(what, data)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in _KINDS:
            raise _refuse(what, data, dtype)
    dev = backend.normalize_device(device) if device is not None else None
    if dev is None:
        if backend.is_cupy_array(data):
            dev = backend.device_of(data)
        elif isinstance(data, (np.ndarray, np.generic)):
            dev = "cpu"
        elif hasattr(data, "__dlpack__") and not isinstance(data, (list, tuple)):
            arr = check_kind(_from_foreign(data, dtype), what, data)
            return arr.copy() if copy else arr
        else:
            dev = backend.default_device()
    if not hasattr(data, "dtype"):  # a number or a (nested) list: look at what NumPy makes of it
        probe = np.asarray(data)
        check_kind(probe, what, data)
        if dtype is None:
            dtype = DEFAULT_FLOAT if probe.dtype.kind == "f" else probe.dtype
        if dev == "cpu":
            return np.asarray(probe, dtype=dtype)
        return backend.array_on(probe, dev, dtype)
    check_kind(data, what, data)
    arr = backend.array_on(data, dev, dtype)
    if copy and arr is data:  # no cast or move made a new array
        arr = arr.copy()
    return arr


def _readonly(d) -> np.ndarray:
    """A read-only NumPy view of ``d`` (the caller cannot write through it into a Tensor)."""
    v = np.asarray(d).view()
    v.flags.writeable = False
    return v


def _from_foreign(obj, dtype):
    """An object with ``__dlpack__`` (torch, jax, ...): import it without a copy where possible."""
    try:
        kind, _ = obj.__dlpack_device__()
    except Exception:
        kind = 1
    if kind == 1:  # kDLCPU
        arr = np.from_dlpack(obj)
    else:
        cp = backend.cupy()
        if cp is None:
            raise RuntimeError("a GPU array was given but CuPy is not installed")
        arr = cp.from_dlpack(obj)
    return arr if dtype is None else arr.astype(dtype, copy=False)


# NumPy's binary operator ufuncs, by name -> the op that ``ndarray <op> Tensor`` records
_OPERATOR_UFUNCS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "true_divide": "divide", "power": "pow", "matmul": "matmul", "less": "less",
    "less_equal": "less_equal", "greater": "greater", "greater_equal": "greater_equal",
    "equal": "equal", "not_equal": "not_equal", "remainder": "mod", "floor_divide": "floor_divide",
}


def _host_args(x):
    """Tensors (also inside lists and tuples) as NumPy arrays; anything else as it is."""
    if isinstance(x, Tensor):
        return np.asarray(x)  # a CUDA tensor raises, naming .numpy()
    if isinstance(x, (list, tuple)):
        return type(x)(_host_args(v) for v in x)
    return x


def holds_tensor(x) -> bool:
    """Whether a (nested) list or tuple holds a Tensor anywhere."""
    for v in x:
        if isinstance(v, Tensor) or isinstance(v, (list, tuple)) and holds_tensor(v):
            return True
    return False


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; a Python number takes ``like``'s float dtype and device. A (nested) list
    or tuple holding Tensors is stacked with recorded ops (``gpugrad.ops`` binds ``'stack'``), so
    gradients reach them."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple)) and holds_tensor(x):
        return BOUND["stack"](x, "as_tensor")
    if like is not None and isinstance(x, (int, float, bool)):
        dt = like.dtype if is_float(like.dtype) else DEFAULT_FLOAT
        xp = backend.get_array_module(like.data)
        return Tensor._make(xp.asarray(x, dtype=dt))
    if like is not None and not hasattr(x, "shape"):
        return Tensor(x, device=like.device)
    return Tensor(x)


def shared(a, dtype=None, device=None, what: str = "asarray") -> Tensor:
    """A Tensor over ``a``'s memory where no cast or move is needed (``gg.asarray``)."""
    return Tensor._make(_to_array(a, dtype, device, copy=False, what=what))


def _check_grad(t: Tensor, g) -> None:
    """PyTorch's checks on ``t.grad = g``: a Tensor (or array) of t's shape, dtype and device."""
    gd = g.data if isinstance(g, Tensor) else g
    if not isinstance(g, Tensor) and (not hasattr(g, "shape") or not hasattr(g, "dtype") or isinstance(g, np.generic)):
        raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(g).__name__}")
    d = t.data
    if gd.dtype != d.dtype:
        raise RuntimeError(f"assigned grad has data of a different type: {gd.dtype} for a tensor of {d.dtype}")
    if tuple(gd.shape) != tuple(d.shape):
        raise RuntimeError(
            f"assigned grad has data of a different size: shape {tuple(gd.shape)} "
            f"for a tensor of shape {tuple(d.shape)}"
        )
    if type(gd) is not np.ndarray or type(d) is not np.ndarray:
        gdev, tdev = backend.device_of(gd), backend.device_of(d)
        if gdev != tdev:
            raise RuntimeError(f"assigned grad expected to be on {tdev} but got grad on {gdev}")
