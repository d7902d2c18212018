"""Custom gradients in the three peers' spellings, all over :class:`gpugrad.ops.op.Op`.

- :func:`custom_gradient` (TensorFlow): the function returns ``(y, grad_fn)``.
- :class:`Function` (PyTorch, also ``gg.autograd.Function``): ``forward(ctx, ...)`` and
  ``backward(ctx, ...)`` static methods, ``MyFn.apply(...)``.
- :class:`custom_vjp` (JAX): ``f = custom_vjp(f); f.defvjp(f_fwd, f_bwd)``.

Each call becomes one recorded op (:class:`_Custom`) whose inputs are the call's tensors and whose
backward calls the user's gradient function. That function is written in gpugrad ops, so it is
recorded again when a higher order is asked for. As in the peers, the forward of the TensorFlow and
JAX spellings runs recorded (residuals computed from the inputs carry their graph into the second
order), and the PyTorch forward runs without recording (saved inputs and outputs carry theirs).

A function with several outputs is one op whose output packs them all (flattened, one float
dtype); the outputs are slices of it, so the gradient function is called once with every output's
gradient (zeros for outputs that were not used).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from . import graph
from .graph import record
from .ops.op import Op, check_grads, finish
from .tensor import Tensor, Variable, as_tensor, is_float

__all__ = ["custom_gradient", "Function", "FunctionCtx", "custom_vjp"]


class _Custom(Op):
    """One call of a user function with its own gradient. The forward has already run on Tensors
    when the op is recorded; the residual is the function ``vjp(ctx, g)`` of the call."""

    residual = True
    check_grads = False  # the spellings check, naming the user's function

    @staticmethod
    def forward_cpu(*arrays):
        raise TypeError("the custom-gradient op is recorded by its spelling, not applied to arrays")

    @staticmethod
    def backward(ctx, gy):
        return ctx.residual(ctx, gy)


def _outputs(name, ys):
    """A forward's result as (list of Tensors, rebuild(list) -> the same structure)."""
    if isinstance(ys, Tensor):
        return [ys], lambda v: v[0]
    if isinstance(ys, (tuple, list)) and ys and all(isinstance(y, Tensor) for y in ys):
        kind = type(ys)
        return list(ys), (lambda v: kind(*v)) if hasattr(ys, "_fields") else (lambda v: kind(v))
    got = type(ys).__name__ if not isinstance(ys, (tuple, list)) else f"a {type(ys).__name__} of " + ", ".join(
        type(y).__name__ for y in ys
    )
    raise TypeError(f"{name}: the forward must return a Tensor or a tuple/list of Tensors, got {got}")


def _pieces(packed, ys):
    """Slices of the packed tensor with the shapes (and dtypes) of the outputs ``ys``."""
    from .ops.math import cast
    from .ops.shape import reshape

    out, off = [], 0
    for y in ys:
        if not is_float(y.dtype):
            out.append(Tensor._make(y.data))  # integer outputs are constants
            continue
        n = y.data.size
        p = reshape(packed[off : off + n], y.shape)
        out.append(cast(p, y.dtype) if p.dtype != y.dtype else p)
        off += n
    return out


def _record(name, ts, ys, vjp):
    """Record one op: inputs ``ts``, outputs with the values of ``ys``; ``vjp(ctx, dys)`` returns
    one gradient per input. Returns the recorded outputs (a list, like ``ys``)."""
    if len(ys) == 1 and is_float(ys[0].dtype):
        return [finish(_Custom, ts, (ys[0].data, lambda ctx, g: vjp(ctx, [g])), {}, name)]
    floats = [y for y in ys if is_float(y.dtype)]
    if not floats:
        return [Tensor._make(y.data) for y in ys]
    xp = _xp(floats[0].data)
    dt = np.result_type(*[y.dtype for y in floats])
    packed = xp.concatenate([y.data.reshape(-1).astype(dt, copy=False) for y in floats])

    def unpack(ctx, g):
        dys = _pieces(g, ys)
        for i, y in enumerate(ys):
            if not is_float(y.dtype):
                dys[i] = Tensor._make(xp.zeros(y.shape, dtype=y.dtype))
        return vjp(ctx, dys)

    return _pieces(finish(_Custom, ts, (packed, unpack), {}, name), ys)


def _xp(d):
    from . import backend

    return backend.get_array_module(d)


def _zeros_like(t):
    from .ops.creation import zeros_like

    return zeros_like(t)


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


@contextlib.contextmanager
def _outer_levels_only(ts):
    """Record what runs inside on every tape tracking ``ts`` except the innermost (the last
    started); nothing at all when the inputs are tracked by ``requires_grad``."""
    st = graph.STATE
    for x in ts:
        if isinstance(x, Variable) and st.autowatch:
            graph._autowatch(x, st.autowatch)
    ids = set()
    for x in ts:
        if x._rg:
            ids = None
            break
        if x._tapes:
            ids |= x._tapes & st.recording
    if not ids:
        with graph.no_grad():
            yield
        return
    inner = max(ids)
    prev = st.recording, st.autowatch
    st.recording = st.recording - {inner}
    st.autowatch = tuple(t for t in st.autowatch if t._id != inner)
    try:
        yield
    finally:
        st.recording, st.autowatch = prev


def _pass(g, out, need):
    return (g,)


def _tracked(x) -> bool:
    """Would an op on ``x`` be recorded right now (``requires_grad``, or a recording tape)?"""
    st = graph.STATE
    if not st.enabled or not isinstance(x, Tensor):
        return False
    if x._rg:
        return True
    if st.recording and x._tapes and x._tapes & st.recording:
        return True
    return bool(st.autowatch) and isinstance(x, Variable) and x.trainable and is_float(x.dtype)


# ------------------------------------------------------------------------------- TensorFlow


def custom_gradient(f=None):
    """TensorFlow's ``@tf.custom_gradient``.

    ``f(*args)`` returns ``(y, grad_fn)``; ``grad_fn(*dys)`` returns the gradient of each tensor
    argument (one, or a list with one per argument; None for none). ``y`` may be a Tensor or a
    tuple/list of Tensors (``grad_fn`` then takes one gradient per output). Number and array
    arguments become constant tensors (and get a gradient entry); other arguments (``self`` of a
    method) and keyword arguments are passed through, not differentiated.

    Trainable Variables that ``f`` reads without taking them as arguments get gradients too:
    ``grad_fn`` must then accept ``variables=`` (the list of them) and return
    ``(input_grads, variable_grads)``, as in TensorFlow.

    ``f`` runs recorded, so a ``grad_fn`` written in gpugrad ops over values that ``f`` computed
    from its inputs differentiates again to every order.
    """
    if f is None:
        return custom_gradient
    name = _name(f)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        like = next((a for a in args if isinstance(a, Tensor)), None)
        # tensors, numbers and arrays are the inputs; anything else (``self`` of a method) passes through
        args = tuple(a if isinstance(a, Tensor) or not _numeric(a) else as_tensor(a, like) for a in args)
        ts = tuple(a for a in args if isinstance(a, Tensor))
        from .tape import GradientTape

        # a tape that only notes which trainable Variables f reads (TensorFlow's VariableWatcher)
        watcher = GradientTape(watch_accessed_variables=True)
        with watcher:
            result = f(*args, **kwargs)
        if not isinstance(result, (tuple, list)) or len(result) != 2 or not callable(result[1]):
            raise TypeError(f"{name}: a custom_gradient function must return (y, grad_fn)")
        y, grad_fn = result
        ys, rebuild = _outputs(name, y)
        arg_ids = {id(t) for t in ts}
        variables = [v for v in watcher.watched_variables() if id(v) not in arg_ids]
        takes_vars = _accepts(grad_fn, "variables")
        if variables and not takes_vars:
            raise TypeError(
                f"{name} reads the Variable(s) {[v.name or tuple(v.shape) for v in variables]} without taking "
                "them as arguments: its grad_fn must accept variables= and return (input_grads, variable_grads)"
            )
        n_in = len(ts)
        inputs = ts + tuple(variables)

        def vjp(ctx, dys):
            if variables:
                got = grad_fn(*dys, variables=variables)
                if not isinstance(got, (tuple, list)) or len(got) != 2:
                    raise RuntimeError(
                        f"the grad_fn of {name} was given variables= and must return (input_grads, "
                        f"variable_grads), got {type(got).__name__}"
                    )
                gx, gv = got
                grads = [*_as_seq(gx, n_in), *_as_seq(gv, len(variables))]
            else:
                grads = _as_seq(grad_fn(*dys), n_in)
            return check_grads(name, grads, inputs)

        return rebuild(_record(name, inputs, ys, vjp))

    return wrapper


def _numeric(a) -> bool:
    if isinstance(a, (int, float, np.ndarray, np.generic)) or hasattr(a, "__cuda_array_interface__"):
        return True
    if isinstance(a, (list, tuple)):  # nested lists of numbers, as TensorFlow converts them
        try:
            return np.asarray(a).dtype.kind in "biuf"
        except (ValueError, TypeError):
            return False
    return False


def _as_seq(g, n):
    """A gradient function's result as a list: a lone Tensor (or None) for one input is allowed."""
    if isinstance(g, (tuple, list)):
        return list(g)
    return [g] if n == 1 else g


def _accepts(fn, kw) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return kw in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


# ------------------------------------------------------------------------------- PyTorch


class FunctionCtx:
    """The ``ctx`` of a :class:`Function`: ``save_for_backward``, ``saved_tensors``,
    ``needs_input_grad``, ``mark_non_differentiable``; any other attribute may be set freely."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._non_diff = ()
        self._resolve = None

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward takes Tensors (or None), got {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        """The saved tensors; an input or output of the call keeps its graph (for higher orders)."""
        if self._resolve is None:
            return tuple(self._saved)
        return tuple(self._resolve(t) for t in self._saved)

    def mark_non_differentiable(self, *outputs) -> None:
        self._non_diff = tuple(id(o) for o in outputs)


class Function:
    """PyTorch's ``torch.autograd.Function``::

        class Exp(gg.autograd.Function):
            @staticmethod
            def forward(ctx, i):
                result = i.exp()  # any gpugrad ops
                ctx.save_for_backward(result)
                return result

            @staticmethod
            def backward(ctx, grad_output):
                (result,) = ctx.saved_tensors
                return grad_output * result

        y = Exp.apply(x)

    ``forward`` runs without recording; ``backward`` returns one gradient per argument of
    ``forward`` (None for non-tensors and for inputs that need none) and is recorded when a higher
    order is asked for: saved inputs and outputs keep their graph, so ``Exp`` differentiates to any
    order. The style with ``setup_context(ctx, inputs, output)`` and a ``forward`` without ``ctx``
    works too.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        name = cls.__name__
        tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx = FunctionCtx(tuple(_tracked(a) for a in args))
        separate = "setup_context" in _class_attrs(cls)
        with graph.no_grad():
            if separate:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        ys, rebuild = _outputs(name, out)
        non_diff = set(ctx._non_diff)
        ts = tuple(args[i] for i in tensor_pos)
        positions = {id(y): k for k, y in enumerate(ys)}
        input_ids = {id(t) for t in ts}
        nargs = len(args)

        def vjp(octx, dys):
            def resolve(t):  # saved outputs become the recorded outputs, so their graph continues
                k = positions.get(id(t)) if t is not None and id(t) not in input_ids else None
                if k is None:
                    return t
                return octx.output if len(ys) == 1 else _pieces(octx.output, ys)[k]

            ctx._resolve = resolve
            need = octx.needs_input_grad
            full = [False] * nargs
            for i, m in zip(tensor_pos, need):
                full[i] = m
            ctx.needs_input_grad = tuple(full)
            got = cls.backward(ctx, *dys)
            got = list(got) if isinstance(got, (tuple, list)) else [got]
            if len(got) > nargs and all(g is None for g in got[nargs:]):
                got = got[:nargs]  # PyTorch allows trailing Nones
            if len(got) != nargs:
                raise RuntimeError(
                    f"the backward of {name} returned {len(got)} gradient(s) for the {nargs} argument(s) of "
                    "forward; return one per argument (None for non-tensors)"
                )
            for i, g in enumerate(got):
                if g is not None and i not in tensor_pos:
                    raise RuntimeError(
                        f"the backward of {name} returned a gradient for argument {i}, which is a "
                        f"{type(args[i]).__name__}, not a Tensor; return None there"
                    )
            return check_grads(name, [got[i] for i in tensor_pos], ts)

        recorded = _record(name, ts, ys, vjp)
        recorded = [Tensor._make(r.data) if id(y) in non_diff else r for r, y in zip(recorded, ys)]
        return rebuild(recorded)


def _class_attrs(cls):
    names = set()
    for k in cls.__mro__:
        if k is Function:
            break
        names.update(vars(k))
    return names


# ------------------------------------------------------------------------------- JAX


class custom_vjp:  # noqa: N801  (JAX's spelling)
    """JAX's ``jax.custom_vjp``::

        @gg.custom_vjp
        def clip_gradient(lo, hi, x):
            return x

        def fwd(lo, hi, x):
            return x, (lo, hi)            # primal output, residuals

        def bwd(res, g):
            lo, hi = res
            return (None, None, gg.clip(g, lo, hi))   # one cotangent per argument

        clip_gradient.defvjp(fwd, bwd)

    ``bwd`` returns a tuple with one entry per (differentiable) argument; None means zero.
    Arguments in ``nondiff_argnums`` are passed to ``bwd`` first (``bwd(*nondiff, res, g)``) and get
    no entry. The primal may return a Tensor or a tuple/list of Tensors (``g`` then has that
    structure). ``f`` itself runs when no argument is being differentiated.

    Higher orders follow JAX: the custom rule is the derivative at the innermost level (the tape
    started last); outer levels differentiate through ``fwd`` and ``bwd`` themselves (residuals
    keep their graph there). Under ``requires_grad`` there is one level, and ``bwd`` serves every
    order.
    """

    def __init__(self, fun, nondiff_argnums: tuple = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd = None
        self.bwd = None

    def defvjp(self, fwd, bwd) -> None:
        """Set the forward (returns ``(y, residuals)``) and backward (``bwd(res, g)``) rules."""
        if not callable(fwd) or not callable(bwd):
            raise TypeError("custom_vjp.defvjp takes two functions, fwd and bwd")
        self.fwd = fwd
        self.bwd = bwd

    def __get__(self, obj, objtype=None):  # as a method
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args):
        name = _name(self.fun)
        if self.fwd is None:
            raise AttributeError(f"No VJP defined for custom_vjp function {name} using defvjp.")
        nondiff = self.nondiff_argnums
        for i in nondiff:
            if not -len(args) <= i < len(args):
                raise ValueError(f"{name}: nondiff_argnums {nondiff} out of range for {len(args)} argument(s)")
        nondiff = {i % len(args) for i in nondiff}
        diff_pos = [i for i in range(len(args)) if i not in nondiff]
        tensor_pos = [i for i in diff_pos if isinstance(args[i], Tensor)]
        if not any(_tracked(args[i]) for i in tensor_pos):
            return self.fun(*args)
        ts = tuple(args[i] for i in tensor_pos)
        with _outer_levels_only(ts):
            result = self.fwd(*args)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise TypeError(f"{name}: the custom_vjp fwd must return (primal_output, residuals)")
            y, res = result
            ys, rebuild = _outputs(name, y)
            # fwd's outputs as the outer levels see them (one may be an input, tracked innermost too)
            outer = tuple(record(t.data, (t,), _pass, "custom_vjp_fwd") for t in ys)
        bwd = self.bwd
        lead = [args[i] for i in sorted(nondiff)]
        n = len(ts)
        # The op's inputs are the arguments and fwd's outputs. fwd ran unrecorded at the innermost
        # level, so that level's walk reaches only the arguments and uses bwd; an outer level's
        # walk also reaches fwd's outputs and differentiates through fwd instead (as JAX does).

        def vjp(ctx, dys):
            got = bwd(*lead, res, rebuild(dys))
            if not isinstance(got, (tuple, list)) or len(got) != len(diff_pos):
                n = len(got) if isinstance(got, (tuple, list)) else f"a {type(got).__name__}, not a tuple"
                raise RuntimeError(
                    f"the custom_vjp bwd of {name} must return a tuple with one cotangent per differentiable "
                    f"argument ({len(diff_pos)}), got {n}"
                )
            by_pos = dict(zip(diff_pos, got))
            return check_grads(name, [by_pos[i] for i in tensor_pos], ts)

        def level_vjp(ctx, dys):
            if any(ctx._need[n:]):  # an outer level: through fwd's outputs
                return (None,) * n + tuple(dys)
            return (*vjp(ctx, dys), *(None,) * len(ys))

        return rebuild(_record(name, ts + outer, ys, level_vjp))
