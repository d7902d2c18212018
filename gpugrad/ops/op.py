"""``gg.Op``: the one base of kernel-backed ops, built-in and user-defined.

An op gives a forward on arrays and a backward written in gpugrad ops::

    class Swish(gg.Op):
        @staticmethod
        def forward_cpu(x):               # NumPy arrays in, one array out
            return x / (1 + np.exp(-x))

        @staticmethod
        def forward_gpu(x):               # optional: CuPy arrays, e.g. a gg.cuda.RawKernel launch
            ...

        @staticmethod
        def backward(ctx, gy):            # one gradient (Tensor or None) per input
            (x,) = ctx.inputs
            s = gg.sigmoid(x)
            return gy * (s + ctx.output * (1 - s))

    y = Swish.apply(x)

Because the backward is made of ops, it is recorded whenever a higher order is asked for, so every
order of derivative works through the forward kernels. The same class carries the built-in
activations, softmax and the fused losses, and the custom-gradient spellings of
:mod:`gpugrad.custom`.

Dispatch: ``forward_gpu`` runs when the first input is a non-empty CuPy array whose dtype is in
``gpu_dtypes`` (``None``: any) and ``GPUGRAD_KERNELS`` is not ``0``; otherwise ``forward_cpu``
runs on the arrays as they are (NumPy, or CuPy when there is no ``forward_gpu`` for them: write it
with array methods and ``gg.backend.get_array_module`` to run on both).

Keyword arguments of ``apply`` are passed to both forwards and read in the backward as
``ctx.<name>`` (``Softmax.apply(x, axis=1)`` → ``ctx.axis``). An op whose class sets
``residual = True`` returns ``(y, r)`` from its forwards; ``r`` (any object) is ``ctx.residual``.

Two backwards: ``backward`` (ops, recorded when a higher order is asked for) and, optionally,
``backward_arrays(ctx, gy)``, the same rule on arrays: a first-order gradient, which nothing
records, runs it and makes no Tensor on the way (``ctx.inputs`` and ``ctx.output`` are still the
Tensors; read ``.data``). It returns arrays or None per input, or None as a whole to use
``backward`` this time. An op whose gradient is one other op of (its output or its input, gy), as
``sigmoid``'s is ``SigmoidGrad(y, gy)``, sets ``grad_op = (SigmoidGrad, "output")`` and gets both.
``Op.run(*arrays, **params)`` is the forward on arrays alone, dispatched as ``apply`` does.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np

from .. import backend
from ..graph import record
from ..tensor import Tensor, as_tensor
from .base import USE_KERNELS, check_devices, holds_tensor, stack_nested

__all__ = ["Op", "KernelOp", "Context"]


class Context(tuple):
    """What an op's ``backward`` sees: ``inputs`` (Tensors), ``output`` (the Tensor the op made),
    ``needs_input_grad`` (one bool per input), keyword arguments of ``apply`` as attributes and,
    for ops with ``residual = True``, ``residual``. (A tuple underneath: made once per backward
    step of every op, so it is made in C.)"""

    __slots__ = ()
    inputs = property(itemgetter(0))
    output = property(itemgetter(1))
    _need = property(itemgetter(2))
    params = property(itemgetter(3))
    residual = property(itemgetter(4))

    @property
    def needs_input_grad(self) -> tuple:
        return tuple(map(bool, self[2]))

    def __getattr__(self, name):
        # only reached for names that are not defined above: the keyword arguments of ``apply``
        params = self[3]
        if params and name in params:
            return params[name]
        raise AttributeError(f"the backward context has no attribute {name!r}")


_ctx = tuple.__new__


class Op:
    """Base of ops with an array forward and a backward in gpugrad ops; see the module docstring.

    Subclasses define ``forward_cpu`` (and optionally ``forward_gpu``) and ``backward`` as static
    methods and are called through :meth:`apply`.
    """

    forward_gpu = None
    #: CuPy dtypes (``dtype.char``) that ``forward_gpu`` takes; None: every dtype
    gpu_dtypes: str | None = None
    #: the forwards return ``(y, residual)``; the backward reads ``ctx.residual``
    residual = False
    #: check what the forward and ``backward`` return (types, count, shapes); built-in ops are trusted
    check_grads = True
    #: a one-input op whose gradient is another op of (its output or its input, gy), given the
    #: same keyword arguments: ``(GradOp, "output")`` or ``(GradOp, "input")`` instead of ``backward``
    grad_op = None
    _node_backward = None
    _node_fast = None

    def __init_subclass__(cls, abstract: bool = False, **kwargs):
        # ``class Base(gg.Op, abstract=True)``: a base for other ops, with no forward of its own
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        if cls.grad_op is not None and "backward" not in cls.__dict__:
            cls.backward = staticmethod(_backward_by(*cls.grad_op))
        for need in ("forward_cpu", "backward"):
            if not callable(getattr(cls, need, None)):
                raise TypeError(f"{cls.__name__}: a gg.Op subclass must define the static method {need}")
        cls._node_backward = staticmethod(_node_backward(cls))
        cls._node_fast = _node_fast(cls)
        # ``apply``, and two entries without keywords for the hot paths of the built-in ops
        apply, apply1, apply2 = _make_apply(cls)
        cls.apply = staticmethod(apply)
        cls._apply1 = staticmethod(apply1)
        cls._apply2 = staticmethod(apply2)
        cls.run = staticmethod(_make_run(cls))

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        """Run the forward on the inputs' arrays and record the op for differentiation.

        (Each subclass gets its own copy of this, specialized when the class is made: this is
        the hot path of every kernel op.)"""
        raise TypeError(f"{cls.__name__} is an abstract gg.Op: it has no forward to apply")


def _make_apply(cls):
    name = cls.__name__
    fcpu = cls.forward_cpu
    node_backward = cls._node_backward
    node_fast = cls._node_fast
    plain = not (cls.residual or cls.check_grads)

    def apply(*inputs, **params) -> Tensor:
        n = len(inputs)
        if n == 1:
            x = inputs[0]
            if not isinstance(x, Tensor):
                inputs = as_inputs(inputs, name)
                x = inputs[0]
            d = x.data
            if d.__class__ is np.ndarray:
                out = fcpu(d, **params) if params else fcpu(d)
            else:
                out = _forward_other(cls, (d,), params)
        elif n == 2:  # the backward ops: (output or input, upstream gradient)
            a, b = inputs
            if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                inputs = as_inputs(inputs, name)
                a, b = inputs
            da, db = a.data, b.data
            if da.__class__ is np.ndarray and db.__class__ is np.ndarray:
                out = fcpu(da, db, **params) if params else fcpu(da, db)
            else:
                if da.__class__ is not db.__class__:  # NumPy scalars pass; another device raises
                    check_devices(a, b, name)
                out = _forward_other(cls, (da, db), params)
        else:
            if not n:
                raise TypeError(f"{name}.apply needs at least one input")
            for x in inputs:
                if not isinstance(x, Tensor):
                    inputs = as_inputs(inputs, name)
                    break
            arrays = [t.data for t in inputs]
            kind = arrays[0].__class__
            for i, a in enumerate(arrays):
                if a.__class__ is not kind:  # NumPy scalars pass; another device raises
                    check_devices(inputs[0], inputs[i], name)
            if kind is np.ndarray:
                out = fcpu(*arrays, **params)
            else:
                out = _forward_other(cls, arrays, params)
        if plain:
            if not params:
                return record(out, inputs, node_backward, name, node_fast)
            bw, fw = _bound(cls, params, None)
            return record(out, inputs, bw, name, fw)
        return finish(cls, inputs, out, params, name)

    def apply1(x) -> Tensor:
        # ``apply`` of one Tensor and no keywords: the entry of the built-in activations
        if x.__class__ is not Tensor:
            return apply(x)
        d = x.data
        out = fcpu(d) if d.__class__ is np.ndarray else _forward_other(cls, (d,), {})
        if plain:
            return record(out, (x,), node_backward, name, node_fast)
        return finish(cls, (x,), out, {}, name)

    def apply2(a, b) -> Tensor:
        # ``apply`` of two Tensors and no keywords: the entry of the built-in backward ops
        if a.__class__ is not Tensor or b.__class__ is not Tensor:
            return apply(a, b)
        da, db = a.data, b.data
        if da.__class__ is np.ndarray and db.__class__ is np.ndarray:
            out = fcpu(da, db)
        else:
            if da.__class__ is not db.__class__:
                check_devices(a, b, name)
            out = _forward_other(cls, (da, db), {})
        if plain:
            return record(out, (a, b), node_backward, name, node_fast)
        return finish(cls, (a, b), out, {}, name)

    apply.__doc__ = f"{name}(*inputs): run the forward on the inputs' arrays and record it."
    apply.__qualname__ = f"{cls.__qualname__}.apply"
    return apply, apply1, apply2


def _make_run(cls):
    """``cls.run(*arrays, **params)``: the op's forward on arrays alone, dispatched as ``apply``
    does (NumPy to ``forward_cpu``, CuPy to ``forward_gpu`` where it takes them), recording
    nothing: what a backward on arrays calls."""
    fcpu = cls.forward_cpu

    def run(*arrays, **params):
        if arrays[0].__class__ is np.ndarray:
            return fcpu(*arrays, **params)
        return _forward_other(cls, arrays, params)

    return run


def _backward_by(grad_cls, of):
    """The backward of a one-input op whose gradient is ``grad_cls`` of (output or input, gy)."""
    from_output = of == "output"
    if not from_output and of != "input":
        raise ValueError(f"grad_op: the gradient op takes the 'output' or the 'input', got {of!r}")

    def backward(ctx, g):
        src = ctx.output if from_output else ctx.inputs[0]
        params = ctx.params  # the keyword arguments of apply (softmax's axis) go to the gradient op
        return (grad_cls.apply(src, g, **params) if params else grad_cls._apply2(src, g),)

    backward.by_grad_op = True
    return backward


def _forward_other(cls, arrays, params):
    """The forward of CuPy (or other non-NumPy) arrays: ``forward_gpu`` where it takes them."""
    fgpu = cls.forward_gpu
    if fgpu is not None and _gpu_ok(cls, arrays[0]) and _same_float_dtype(arrays):
        return fgpu(*arrays, **params)
    return _generic(cls, arrays, params)


def _same_float_dtype(arrays) -> bool:
    """Whether every float input has the first one's dtype: the kernels compute in that dtype, so
    mixed inputs (a float32 output with a float64 upstream gradient) take the array path, which
    promotes as the CPU does."""
    dt = arrays[0].dtype
    for a in arrays[1:]:
        d = getattr(a, "dtype", None)
        if d is not None and d.kind == "f" and d != dt:
            return False
    return True


class KernelOp(Op, abstract=True):
    """The built-in ops' base: a raw-kernel forward for float32/float64 CuPy arrays, and
    gradients that need no checking."""

    gpu_dtypes = "fd"
    check_grads = False


def _generic(cls, arrays, params):
    """forward_cpu on CuPy arrays (no forward_gpu for them): fine for array-method code."""
    try:
        return cls.forward_cpu(*arrays, **params)
    except TypeError as exc:
        if cls.forward_gpu is not None or not cls.check_grads:
            raise
        raise TypeError(
            f"{cls.__name__}.forward_cpu failed on CuPy arrays ({exc}); give the op a forward_gpu, or "
            "write forward_cpu with array methods and gg.backend.get_array_module so it runs on both"
        ) from exc


def _gpu_ok(cls, d) -> bool:
    """Whether ``forward_gpu`` takes ``d``: a non-empty CuPy array of one of ``gpu_dtypes``."""
    dts = cls.gpu_dtypes
    return USE_KERNELS and backend.is_cupy_array(d) and d.size > 0 and (dts is None or d.dtype.char in dts)


def as_inputs(inputs, name: str) -> tuple:
    """Every input as a Tensor on one device: numbers and arrays follow the first Tensor."""
    if not inputs:
        raise TypeError(f"{name}.apply needs at least one input")
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            if like is not x and type(x.data) is not type(like.data):
                check_devices(like, x, name)
        elif x is None or isinstance(x, (str, bytes)) or callable(x):
            raise TypeError(
                f"{name}.apply: inputs are tensors, arrays or numbers, got {type(x).__name__}; pass other "
                "arguments by keyword"
            )
        else:
            if isinstance(x, (list, tuple)) and holds_tensor(x):
                x = stack_nested(x, name)
            else:
                x = as_tensor(x, like) if like is not None else as_tensor(x)
            if like is None:
                like = x
        out.append(x)
    return tuple(out)


def finish(cls, ts, out, params, name: str) -> Tensor:
    """Record the forward's result ``out`` (an array, or ``(array, residual)``) as the op's output."""
    saved = None
    if cls.residual:
        out, saved = out
    if cls.check_grads:
        if isinstance(out, np.generic):  # NumPy ufuncs give scalars for 0-d input
            out = np.asarray(out)
        elif isinstance(out, Tensor) or not hasattr(out, "dtype"):
            raise TypeError(f"{name}: the forward must return one array, got {type(out).__name__}")
        dev = backend.device_of(out)
        if ts and dev != ts[0].device:
            raise RuntimeError(
                f"{name}: the forward returned an array on {dev} for inputs on {ts[0].device}; return it "
                "on the inputs' device"
            )
    if params or saved is not None:
        bw, fw = _bound(cls, params, saved)
        return record(out, ts, bw, name, fw)
    return record(out, ts, cls._node_backward, name, cls._node_fast)


def _bound(cls, params, saved):
    """The node's backward and fast rule for one call's keyword arguments and residual."""
    fn = cls._node_backward
    fast = cls._node_fast

    def bw(g, o, need):
        return fn(g, o, need, params, saved)

    if fast is None:
        return bw, None

    def fw(g, o, need):
        return fast(g, o, need, params, saved)

    return bw, fw


def _node_backward(cls):
    """The graph's backward for op class ``cls``: build the context, call ``cls.backward``, check."""
    name = cls.__name__
    backward = cls.backward
    check = cls.check_grads

    def node_backward(g, out, need, params=None, saved=None):
        inputs = out._node.inputs
        grads = backward(_ctx(Context, (inputs, out, need, params, saved)), g)
        return check_grads(name, grads, inputs) if check else grads

    return node_backward


def _node_fast(cls):
    """The graph's rule on arrays for op class ``cls`` (see :class:`gpugrad.graph.Node`): from
    ``grad_op`` (the gradient op's forward on arrays), or ``cls.backward_arrays(ctx, g)`` where
    the class gives one (arrays back, or None to use ``backward``); else None."""
    arrays = getattr(cls, "backward_arrays", None)
    if arrays is not None:
        name = cls.__name__
        check = cls.check_grads

        def node_fast(g, out, need, params=None, saved=None):
            inputs = out._node.inputs
            grads = arrays(_ctx(Context, (inputs, out, need, params, saved)), g)
            if grads is None or not check:
                return grads
            # a user's rule: checked as its backward is (count, shapes, devices), arrays back
            return tuple(None if t is None else t.data for t in check_grads(name, grads, inputs))

        return node_fast
    if not getattr(cls.backward, "by_grad_op", False):
        return None
    grad_cls, of = cls.grad_op
    run = grad_cls.run
    fcpu = grad_cls.forward_cpu
    from_output = of == "output"

    def node_fast(g, out, need, params=None, saved=None):
        src = out.data if from_output else out._node.inputs[0].data
        if params:
            return (run(src, g, **params),)
        # NumPy straight to forward_cpu (what run would pick), one call less per backward step
        return (fcpu(src, g) if src.__class__ is np.ndarray else run(src, g),)

    return node_fast


def check_grads(name: str, grads, inputs) -> tuple:
    """The gradients a user's backward returned, checked: one per input, each None or a Tensor
    (arrays are wrapped) of the input's shape; a gradient that broadcasts to a larger shape is
    summed back to the input's (as PyTorch does)."""
    n = len(inputs)
    if isinstance(grads, Tensor) or grads is None or not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != n:
        raise RuntimeError(
            f"the backward of {name} returned {len(grads)} gradient(s) for {n} input(s); return one "
            "gradient (or None) per input"
        )
    out = []
    for i, (g, x) in enumerate(zip(grads, inputs)):
        if g is not None and isinstance(x, Tensor):
            if not isinstance(g, Tensor):
                if not hasattr(g, "shape") and not isinstance(g, (int, float)):
                    raise TypeError(
                        f"the backward of {name} returned a {type(g).__name__} as the gradient of input "
                        f"{i}; return a Tensor or None"
                    )
                g = Tensor(g, dtype=x.dtype, device=x.device)
            if g.shape != x.shape:
                g = _fit_shape(name, i, g, x)
            if g.device != x.device:
                raise RuntimeError(
                    f"the backward of {name} returned the gradient of input {i} on {g.device}; the input is "
                    f"on {x.device}"
                )
        out.append(g)
    return tuple(out)


def _fit_shape(name, i, g, x):
    from .base import unbroadcast

    try:
        fits = np.broadcast_shapes(x.shape, g.shape) == g.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(
            f"the backward of {name} returned a gradient of shape {g.shape} for input {i} of shape "
            f"{x.shape}; a gradient has its input's shape"
        )
    return unbroadcast(g, x)
