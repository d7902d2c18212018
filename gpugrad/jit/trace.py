"""Recording the array calls a function makes: the tracer behind :func:`gpugrad.jit`.

While a compiled step traces, every array the engine touches is a :class:`Traced` proxy. A proxy
holds the real array, so the traced call computes real results (it *is* an eager call), and it
records every array-level call made on it — NumPy ufuncs and functions through the array
protocols (``__array_ufunc__``, ``__array_function__``), ndarray methods and operators directly,
CUDA kernel entry points through a wrapped module — into a :class:`Trace`: a flat list of calls
over numbered buffers. Nothing in the ops knows about it: ``backend.get_array_module`` hands out
a traced namespace for proxies, so arrays the ops create (``xp.zeros``) are recorded too.

Reading a traced value into Python (``float``, ``bool``, ``.item()``, ``.numpy()``) raises
:class:`TracingError`: the replay runs no Python, so the value would be frozen.
"""

from __future__ import annotations

import operator
import sys

import numpy as np

from .. import backend


class TracingError(RuntimeError):
    """A compiled step (``gg.jit``) tried to read a traced value into Python."""


class Ref:
    """A buffer in a recorded call's arguments."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __repr__(self):
        return f"b{self.i}"


class Buf:
    """One numbered buffer: an argument, a Variable's array, a constant, a host value or the
    result of a recorded call. ``root`` is the buffer whose memory it shares (itself unless it
    is a view)."""

    __slots__ = ("i", "kind", "value", "root", "used", "owner")

    def __init__(self, i, kind, value, root=None, owner=None):
        self.i = i
        self.kind = kind  # 'arg' | 'var' | 'grad' | 'const' | 'new' | 'host'
        self.value = value
        self.root = i if root is None else root
        self.used = False
        self.owner = owner


class Instr:
    """One recorded call. ``fn`` is a callable, or ``('method', name)`` / ``('getitem',)`` /
    ``('setitem',)``; ``out`` is the result template (Refs), ``writes`` the buffers it mutates,
    ``fresh`` the buffers it creates."""

    __slots__ = ("fn", "args", "kwargs", "out", "writes", "fresh", "plan", "host", "err")

    def __init__(self, fn, args, kwargs, out, writes, fresh, plan=False, host=False, err=None):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.out = out
        self.writes = writes
        self.fresh = fresh
        self.plan = plan  # its one fresh result may be written with out=
        self.host = host
        self.err = err  # np.geterr() when it differed from the trace's start

    def reads(self):
        refs = []
        _collect(self.args, refs)
        _collect(self.kwargs, refs)
        return refs


def _collect(x, acc):
    if isinstance(x, Ref):
        acc.append(x.i)
    elif type(x) in (list, tuple):
        for e in x:
            _collect(e, acc)
    elif type(x) is dict:
        for e in x.values():
            _collect(e, acc)


# methods that accept out= and give one new array: the planner may write them into a buffer
PLAN_METHODS = frozenset({"sum", "max", "min", "mean", "prod", "clip", "dot"})
MUTATING_FUNCS = {"put_along_axis": 0, "copyto": 0, "put": 0, "place": 0, "putmask": 0, "fill_diagonal": 0}
CREATORS = frozenset({"zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
                      "arange", "eye", "linspace", "identity"})

_WHAT = {
    "__float__": "float(t)",
    "__int__": "int(t)",
    "__bool__": "bool(t) (an `if t:` or `if t > 0:` on a tensor)",
    "__index__": "using a tensor as a Python int or index",
    "item": "t.item()",
    "tolist": "t.tolist()",
    "numpy": "t.numpy()",
    "__repr__": "printing a tensor (repr)",
    "__format__": "formatting a tensor",
    "__array__": "numpy.asarray(t)",
}


def _what(default: str) -> str:
    """Name the Tensor method that led here (the outermost one within a few frames)."""
    from ..tensor import Tensor

    codes = {}
    for name in _WHAT:
        fn = getattr(Tensor, name, None)
        code = getattr(fn, "__code__", None)
        if code is not None:
            codes[code] = _WHAT[name]
    found = None
    f = sys._getframe(1)
    for _ in range(10):
        if f is None:
            break
        if f.f_code in codes:
            found = codes[f.f_code]
        f = f.f_back
    return found or default


def _tracing_error(what: str) -> TracingError:
    return TracingError(
        f"{what} inside a compiled step (gg.jit) reads a traced value into Python. A compiled step is "
        "recorded on its first call and replayed without running Python, so such a value would be "
        "frozen at its first-call value. Compute it outside the compiled function (return the tensor "
        "and read it after the call), or make the input it depends on a static argument "
        "(gg.jit(fn, static_argnums=...))."
    )


_ESCAPED = (
    "a traced array escaped the compiled step that made it (stored somewhere during the trace "
    "instead of returned): return tensors you need after the call from the compiled function"
)


ACTIVE = None  # the Trace being recorded, if any


class Trace:
    """The recording of one call: buffers and instructions."""

    def __init__(self):
        self.bufs: list[Buf] = []
        self.instrs: list[Instr] = []
        self.consts: dict[int, int] = {}  # id(array) -> buffer index
        self.closed = False
        self.err0 = np.geterr()
        self.ns = {"cpu": TracedNamespace(self, np)}

    def kernels(self, module):
        k = self.ns.get("kernels")
        if k is None:
            k = self.ns["kernels"] = KernelModule(self, module)
        return k

    def namespace(self, gpu: bool):
        key = "cuda" if gpu else "cpu"
        ns = self.ns.get(key)
        if ns is None:
            ns = self.ns[key] = TracedNamespace(self, backend.cupy())
        return ns

    # -- buffers ----------------------------------------------------------------------------------
    def new_buf(self, kind, value, root=None, owner=None) -> Buf:
        b = Buf(len(self.bufs), kind, value, root, owner)
        self.bufs.append(b)
        return b

    def proxy(self, kind, value, owner=None) -> Traced:
        return Traced(self, self.new_buf(kind, value, owner=owner).i, value)

    def const(self, a) -> int:
        i = self.consts.get(id(a))
        if i is None or self.bufs[i].value is not a:
            i = self.new_buf("const", a).i
            self.consts[id(a)] = i
        return i

    # -- conversion of call arguments ----------------------------------------------------------------
    def _conv(self, x, seen):
        """(template, real value) for an argument tree."""
        cls = type(x)
        if cls is Traced or cls is HostValue:
            if x._t is not self or self.closed:
                raise RuntimeError(_ESCAPED)
            b = self.bufs[x._b]
            b.used = True
            seen.append((x._v, x))
            return Ref(x._b), x._v
        if cls is list or cls is tuple:
            pairs = [self._conv(e, seen) for e in x]
            return cls(p[0] for p in pairs), cls(p[1] for p in pairs)
        if cls is dict:
            pairs = {k: self._conv(v, seen) for k, v in x.items()}
            return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
        if cls is np.ndarray or backend.is_cupy_array(x):
            i = self.const(x)
            seen.append((x, None))
            return Ref(i), x
        return x, x

    # -- recording ----------------------------------------------------------------------------------
    def call(self, fn, args, kwargs, real_fn=None, writes=(), plan=False):
        """Run ``real_fn`` (default ``fn``) on the real values and record the call."""
        seen = []
        targs, rargs = self._conv(tuple(args), seen)
        tkw, rkw = self._conv(dict(kwargs), seen)
        wr = []
        for w in writes:
            _collect(targs[w] if isinstance(w, int) else tkw.get(w), wr)
        for w in wr:
            root = self.bufs[w].root
            if self.bufs[root].kind == "const":
                self._fresh_copy(root, seen)
        if isinstance(fn, tuple):
            name = fn[0]
            if name == "method":
                res = getattr(rargs[0], fn[1])(*rargs[1:], **rkw)
            elif name == "getitem":
                res = rargs[0][rargs[1]]
            else:  # setitem
                rargs[0][rargs[1]] = rargs[2]
                res = None
        else:
            res = (real_fn or fn)(*rargs, **rkw)
        fresh = []
        out = self._wrap(res, seen, fresh)
        if not wr and not fresh and type(fn) is tuple and fn[0] == "method" and isinstance(out[0], Ref):
            return out[1]  # a method that handed its array back unchanged (astype(copy=False)): no call
        err = np.geterr()
        ins = Instr(fn if real_fn is None else real_fn, targs, tkw, out[0], wr, fresh,
                    plan=plan and len(fresh) == 1 and isinstance(out[0], Ref) and out[0].i == fresh[0]
                    and self._is_array(self.bufs[fresh[0]].value),
                    err=None if err == self.err0 else err)
        self.instrs.append(ins)
        return out[1]

    def _fresh_copy(self, i, seen):
        """A constant about to be written in place (an op filling an array it made from constants):
        each replay must start from its value as it is now, so it becomes a buffer copied afresh
        from a snapshot at the start of the program (earlier readers see the same value)."""
        b = self.bufs[i]
        real = b.value
        snap = self.new_buf("const", real.copy())
        b.kind = "new"
        self.instrs.insert(0, Instr(("method", "copy"), (Ref(snap.i),), {}, Ref(i), [], [i]))
        proxy = Traced(self, i, real)
        for k, (r, p) in enumerate(seen):
            if p is None and r is real:
                seen[k] = (r, proxy)

    def _is_array(self, v) -> bool:
        return type(v) is np.ndarray or backend.is_cupy_array(v)

    def _wrap(self, res, seen, fresh):
        """(template, proxy tree) for a call's result."""
        if res is None:
            return None, None
        cls = type(res)
        if cls is tuple or cls is list:
            pairs = [self._wrap(r, seen, fresh) for r in res]
            return cls(p[0] for p in pairs), cls(p[1] for p in pairs)
        is_arr = self._is_array(res)
        if not (is_arr or isinstance(res, np.generic)):
            return res, res  # a Python value: a constant of the trace
        for real, p in seen:
            if real is res:
                if p is None:  # a constant handed back unchanged
                    return Ref(self.const(res)), res
                return Ref(p._b), p
        root = None
        if is_arr:
            for real, p in seen:
                if self._is_array(real) and _shares(res, real):
                    i = p._b if p is not None else self.const(real)
                    root = self.bufs[i].root
                    break
        b = self.new_buf("new", res, root)
        fresh.append(b.i)
        return Ref(b.i), Traced(self, b.i, res)

    def ufunc(self, uf, method, inputs, kwargs):
        out = kwargs.get("out")
        kw = dict(kwargs)
        writes = []
        if out is not None:
            kw["out"] = out if len(out) != 1 else out[0]
            writes = ["out"]
        real = uf if not _any_gpu(inputs) else getattr(backend.cupy(), uf.__name__)
        if method != "__call__":
            real = getattr(real, method)
            fn = getattr(uf, method)
        else:
            fn = uf
        if method == "at":
            writes = [0]
        plan = out is None and method in ("__call__", "reduce") and uf.nout == 1
        res = self.call(fn, inputs, kw, real_fn=real, writes=writes, plan=plan)
        return res

    def function(self, func, args, kwargs):
        name = func.__name__
        if not _any_gpu(args):
            real = func
        else:
            mod = backend.cupy()
            for part in func.__module__.split(".")[1:]:
                mod = getattr(mod, part, mod)
            real = getattr(mod, name)
        writes = []
        if name in MUTATING_FUNCS:
            writes.append(MUTATING_FUNCS[name])
        if kwargs.get("out") is not None:
            writes.append("out")
        return self.call(func, args, kwargs, real_fn=real, writes=writes)

    def method(self, p, name, args, kwargs, mutates=False):
        plan = name in PLAN_METHODS and kwargs.get("out") is None
        writes = [0] if mutates else []
        if kwargs.get("out") is not None:
            writes.append("out")
        return self.call(("method", name), (p, *args), kwargs, writes=writes, plan=plan)

    def create(self, xp, name, *args, **kwargs):
        """An array made by the traced namespace (``xp.zeros`` and friends): recorded, so that a
        buffer the step later writes into is made afresh on every replay."""
        return self.call(getattr(xp, name), args, kwargs)

    def check(self, fn, args):
        """A value check: run now on the real arrays and at every replay on that call's."""
        self.call(fn, args, {})
        self.instrs[-1].host = True

    def host_array(self, fn, args, kwargs):
        """An array made by host code (a random draw): run now and at every replay."""
        res = self.call(fn, args, kwargs)
        self.instrs[-1].host = True
        return res

    def host(self, fn):
        """Run ``fn`` now and at every replay; its numbers come back as :class:`HostValue`s."""
        if self.closed:
            raise RuntimeError(_ESCAPED)
        value = fn()
        b = self.new_buf("host", value)
        self.instrs.append(Instr(fn, (), {}, Ref(b.i), [], [b.i], host=True))
        return self._host_tree(b.i, value)

    def _host_tree(self, i, value):
        if type(value) in (tuple, list):
            return type(value)(self._host_tree(self._host_item(i, k), v) for k, v in enumerate(value))
        if type(value) is dict:
            return {k: self._host_tree(self._host_item(i, k), v) for k, v in value.items()}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return HostValue(self, i, value)
        return value  # anything else is a constant of the trace

    def _host_item(self, i, key):
        value = self.bufs[i].value[key]
        b = self.new_buf("host", value)
        self.instrs.append(Instr(("getitem",), (Ref(i), key), {}, Ref(b.i), [], [b.i], host=True))
        return b.i


def _any_gpu(args) -> bool:
    for a in args:
        if type(a) is Traced or type(a) is HostValue:
            a = a._v
        elif type(a) in (list, tuple):
            if _any_gpu(a):
                return True
            continue
        if type(a) is not np.ndarray and backend.is_cupy_array(a):
            return True
    return False


def _shares(a, b) -> bool:
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return np.may_share_memory(a, b)
    if type(a) is not type(b):
        return False
    return backend.cupy().may_share_memory(a, b)


class TracedNamespace:
    """What ``backend.get_array_module`` gives for a traced array: NumPy's functions (which
    reach the proxies through the array protocols), with array creation recorded."""

    def __init__(self, trace: Trace, xp):
        self._trace = trace
        self._xp = xp

    def asarray(self, a, dtype=None, **kw):
        if isinstance(a, Traced):
            return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
        return self._xp.asarray(a, dtype=dtype, **kw)

    array = asarray

    def __getattr__(self, name):
        if name in CREATORS:
            t, xp = self._trace, self._xp

            def make(*args, **kwargs):
                return t.create(xp, name, *args, **kwargs)

            return make
        return getattr(np, name)


def _foreign(x) -> bool:
    """An operand with array protocols of its own (a Tensor): it must see the proxy itself, or it
    would compute on the real array and the input would be frozen into the trace as a constant."""
    cls = type(x)
    if cls is Traced or cls is HostValue or cls is np.ndarray or isinstance(x, (np.generic, int, float)):
        return False
    proto = getattr(cls, "__array_ufunc__", None)
    return proto is not None and proto is not np.ndarray.__array_ufunc__ and not backend.is_cupy_array(x)


def _any_foreign(args) -> bool:
    for a in args:
        if type(a) in (list, tuple):
            if _any_foreign(a):
                return True
        elif _foreign(a):
            return True
    return False


def _uf(uf, swap=False):
    if swap:
        def rop(self, other):
            return NotImplemented if _foreign(other) else uf(other, self)

        return rop

    def op(self, other):
        return NotImplemented if _foreign(other) else uf(self, other)

    return op


def _iuf(uf):
    def op(self, other):
        if _foreign(other):
            return NotImplemented
        if type(self._v) is not np.ndarray and not backend.is_cupy_array(self._v):
            return uf(self, other)  # a NumPy scalar: no in-place form (as Python does)
        return uf(self, other, out=self)

    return op


def _meth(name, mutates=False):
    def m(self, *args, **kwargs):
        return self._t.method(self, name, args, kwargs, mutates)

    m.__name__ = name
    return m


class Traced:
    """An array being traced: the real array plus where it sits in the trace."""

    __slots__ = ("_t", "_b", "_v")
    __array_priority__ = 1000

    def __init__(self, trace, b, value):
        self._t = trace
        self._b = b
        self._v = value

    def _mark(self):
        if self._t.closed:
            raise RuntimeError(_ESCAPED)
        self._t.bufs[self._b].used = True
        return self._v

    # what the ops read without computing
    shape = property(lambda s: s._mark().shape)
    dtype = property(lambda s: s._mark().dtype)
    ndim = property(lambda s: s._mark().ndim)
    size = property(lambda s: s._mark().size)
    itemsize = property(lambda s: s._mark().itemsize)
    nbytes = property(lambda s: s._mark().nbytes)
    strides = property(lambda s: s._mark().strides)
    flags = property(lambda s: s._mark().flags)
    T = property(lambda s: s.transpose())
    mT = property(lambda s: s.swapaxes(-1, -2))

    @property
    def gg_xp(self):
        return self._t.namespace(self.gg_cuda)

    @property
    def gg_device(self):
        return backend.device_of(self._v)

    @property
    def gg_cuda(self):
        v = self._v
        return type(v) is not np.ndarray and not isinstance(v, np.generic) and backend.is_cupy_array(v)

    @property
    def gg_trace(self):
        return self._t

    def __len__(self):
        return len(self._mark())

    def __repr__(self):
        v = self._v
        return f"Traced(shape={getattr(v, 'shape', ())}, dtype={getattr(v, 'dtype', type(v).__name__)})"

    __str__ = __repr__

    # the array protocols: every NumPy ufunc and function on a proxy lands here
    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if _any_foreign(inputs):
            return NotImplemented  # NumPy then asks the Tensor, which records an op on this proxy
        return self._t.ufunc(uf, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if _any_foreign(args):
            return NotImplemented
        return self._t.function(func, args, kwargs)

    # reading into Python: refused
    def __array__(self, dtype=None, copy=None):
        raise _tracing_error(_what("numpy.asarray(t)"))

    def __float__(self):
        raise _tracing_error(_what("float(t)"))

    def __int__(self):
        raise _tracing_error(_what("int(t)"))

    def __bool__(self):
        raise _tracing_error(_what("bool(t)"))

    def __index__(self):
        raise _tracing_error(_what("using a tensor as a Python int"))

    def __iter__(self):
        raise _tracing_error("iterating over a tensor")

    def item(self, *args):
        raise _tracing_error(_what("t.item()"))

    def tolist(self):
        raise _tracing_error(_what("t.tolist()"))

    def get(self, *args, **kwargs):
        raise _tracing_error(_what("t.numpy() of a CUDA tensor"))

    # indexing
    def __getitem__(self, idx):
        return self._t.call(("getitem",), (self, idx), {})

    def __setitem__(self, idx, value):
        self._t.call(("setitem",), (self, idx, value), {}, writes=[0])

    # operators
    __add__ = _uf(np.add)
    __radd__ = _uf(np.add, True)
    __sub__ = _uf(np.subtract)
    __rsub__ = _uf(np.subtract, True)
    __mul__ = _uf(np.multiply)
    __rmul__ = _uf(np.multiply, True)
    __truediv__ = _uf(np.true_divide)
    __rtruediv__ = _uf(np.true_divide, True)
    __floordiv__ = _uf(np.floor_divide)
    __rfloordiv__ = _uf(np.floor_divide, True)
    __mod__ = _uf(np.remainder)
    __rmod__ = _uf(np.remainder, True)
    __pow__ = _uf(np.power)
    __rpow__ = _uf(np.power, True)
    __matmul__ = _uf(np.matmul)
    __rmatmul__ = _uf(np.matmul, True)
    __and__ = _uf(np.bitwise_and)
    __rand__ = _uf(np.bitwise_and, True)
    __or__ = _uf(np.bitwise_or)
    __ror__ = _uf(np.bitwise_or, True)
    __xor__ = _uf(np.bitwise_xor)
    __rxor__ = _uf(np.bitwise_xor, True)
    __lt__ = _uf(np.less)
    __le__ = _uf(np.less_equal)
    __gt__ = _uf(np.greater)
    __ge__ = _uf(np.greater_equal)
    __eq__ = _uf(np.equal)
    __ne__ = _uf(np.not_equal)
    __iadd__ = _iuf(np.add)
    __isub__ = _iuf(np.subtract)
    __imul__ = _iuf(np.multiply)
    __itruediv__ = _iuf(np.true_divide)
    __ipow__ = _iuf(np.power)
    __iand__ = _iuf(np.bitwise_and)
    __ior__ = _iuf(np.bitwise_or)
    __hash__ = None

    def __neg__(self):
        return np.negative(self)

    def __pos__(self):
        return np.positive(self)

    def __abs__(self):
        return np.absolute(self)

    def __invert__(self):
        return np.invert(self)

    # ndarray methods the ops use (each one recorded as it is)
    sum = _meth("sum")
    max = _meth("max")
    min = _meth("min")
    mean = _meth("mean")
    prod = _meth("prod")
    any = _meth("any")
    all = _meth("all")
    std = _meth("std")
    var = _meth("var")
    argmax = _meth("argmax")
    argmin = _meth("argmin")
    cumsum = _meth("cumsum")
    reshape = _meth("reshape")
    transpose = _meth("transpose")
    swapaxes = _meth("swapaxes")
    astype = _meth("astype")
    copy = _meth("copy")
    ravel = _meth("ravel")
    flatten = _meth("flatten")
    squeeze = _meth("squeeze")
    clip = _meth("clip")
    dot = _meth("dot")
    repeat = _meth("repeat")
    take = _meth("take")
    round = _meth("round")
    conj = _meth("conj")
    view = _meth("view")
    fill = _meth("fill", mutates=True)
    sort = _meth("sort", mutates=True)


class HostValue:
    """A Python number computed on the host at every replay (an optimizer's learning rate or
    step count): usable in array calls, where it acts as the Python number it stands for."""

    __slots__ = ("_t", "_b", "_v")

    def __init__(self, trace, b, value):
        self._t = trace
        self._b = b
        self._v = value

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        return self._t.ufunc(uf, method, inputs, kwargs)

    def _op(self, fn, other, swap=False):
        if isinstance(other, (int, float, HostValue)) and not isinstance(other, bool):
            t = self._t
            a, b = (other, self) if swap else (self, other)
            va = a._v if isinstance(a, HostValue) else a
            vb = b._v if isinstance(b, HostValue) else b
            value = fn(va, vb)
            nb = t.new_buf("host", value)
            t.instrs.append(Instr(fn, (_href(a), _href(b)), {}, Ref(nb.i), [], [nb.i], host=True))
            return HostValue(t, nb.i, value)
        ufunc = _HOST_UFUNCS[fn]
        return ufunc(other, self) if swap else ufunc(self, other)

    def __add__(self, o):
        return self._op(operator.add, o)

    def __radd__(self, o):
        return self._op(operator.add, o, True)

    def __sub__(self, o):
        return self._op(operator.sub, o)

    def __rsub__(self, o):
        return self._op(operator.sub, o, True)

    def __mul__(self, o):
        return self._op(operator.mul, o)

    def __rmul__(self, o):
        return self._op(operator.mul, o, True)

    def __truediv__(self, o):
        return self._op(operator.truediv, o)

    def __rtruediv__(self, o):
        return self._op(operator.truediv, o, True)

    def __pow__(self, o):
        return self._op(operator.pow, o)

    def __rpow__(self, o):
        return self._op(operator.pow, o, True)

    def __neg__(self):
        return self._op(operator.mul, -1)

    def __float__(self):
        raise _tracing_error("float() of a value computed on the host at each call (a learning rate)")

    __int__ = __index__ = __bool__ = __float__

    def __repr__(self):
        return f"HostValue({self._v!r})"


_HOST_UFUNCS = {
    operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
    operator.truediv: np.true_divide, operator.pow: np.power,
}


def _href(x):
    return Ref(x._b) if isinstance(x, HostValue) else x


class KernelModule:
    """A kernel module seen through a trace: each entry point called on traced arrays is recorded
    as one call (it may be written with ``out=`` when it makes one array)."""

    def __init__(self, trace, module):
        self._trace = trace
        self._module = module

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if not callable(fn):
            return fn
        t = self._trace

        def traced(*args, **kwargs):
            return t.call(fn, args, kwargs, plan="out" not in kwargs)

        return traced
