"""Compiled steps: ``gg.jit`` records a whole step once and replays it with no per-op Python.

The first call for a new signature (the shapes, dtypes and devices of the array arguments and of
the Variables the function reads; the values of static arguments and of plain Python arguments)
runs the function eagerly while every array is a traced proxy (:mod:`gpugrad._trace`), so that
each array-level call — the forward ops, the backward pass in any spelling, Variable assigns and
optimizer updates — is recorded into a flat program over numbered buffers. The program is then
simplified (calls on constants folded, calls nothing needs dropped), its buffers are planned
(intermediates written with ``out=`` into buffers reused within and across calls, by liveness)
and it is turned into one straight-line Python function of array calls. Later calls with the same
signature run that function: no Tensor or Node objects, no graph walk, no per-op dispatch.

Semantics, as in ``jax.jit`` and ``tf.function``:

- Python side effects (prints, appends, counters) run at trace time only. Optimizers keep their
  step count and learning rate on the host and re-read them at every replay (``backend.host_value``).
- Reading a traced value into Python (``float(t)``, ``t.item()``, ``bool(t)``, ``if t > 0:``,
  ``t.numpy()``) raises :class:`TracingError`; make the input a static argument or compute the
  value outside.
- Arguments are pytrees (lists, tuples, dicts, namedtuples and every other container optree
  knows, such as ``OrderedDict``) of arrays, Tensors, Variables and other values. Arrays and
  Tensors are inputs: a new value is read at each call, a new shape, dtype or device traces again.
  Anything else (a Python number, a string, a model) selects the program by value (a new value
  traces again) and must be hashable; an unhashable one raises ``TypeError`` naming it. One Tensor
  passed twice is one input, as eager code sees it.
- Variables are state: each call reads their current arrays (an ``assign`` made between calls is
  seen) and stores the new ones. Returned tensors are new arrays that later calls never overwrite.
- Variables the first call creates (a layer built on first use, an optimizer's slots) are state of
  that same trace; one made and dropped inside the call is made afresh at each call (the call runs
  eagerly and the next one traces again).
- ``.grad``: ``backward()`` inside the step writes ``.grad`` of ``requires_grad`` Tensor arguments and
  Variables at every call, adding to a grad found there as eager code does.
- Random draws (``gg.random``, ``Dropout``) draw at every call from the generator that eager code
  would use then: a ``seed=`` gives the same numbers each call, ``gg.random.seed`` between calls
  restarts the sequence.
- Returned tensors are cut from any graph (``requires_grad`` is not carried over); called while a
  GradientTape records, a compiled function runs eagerly so that the tape sees it.
- Not thread-safe: one compiled function must not run in two threads at once.

On CuPy arrays the replay is captured once as a CUDA graph (every buffer allocated before the
capture) and each later call is the copies of new inputs plus one graph launch
(``cuda_graph=False`` opts out; a failed capture falls back to plain replay with a warning).
"""

from __future__ import annotations

import functools
import sys
import warnings
import weakref

import numpy as np

from . import _trace, backend
from . import graph as _graph
from . import tensor as _tensor
from ._trace import HostValue, Ref, Trace, Traced, TracingError
from .graph import STATE as _STATE
from .tensor import LIVE_VARIABLES, Tensor

__all__ = ["jit", "TracingError", "Compiled"]


def jit(fn=None, *, static_argnums=(), cuda_graph: bool = True):
    """Compile ``fn`` (a training step, a loss, a forward pass) into a replayed program.

    ``static_argnums``: positions of arguments whose values (not arrays) select the program; a new
    value traces again. ``cuda_graph``: on CUDA, launch the replay as one captured CUDA graph.
    Usable as ``@gg.jit`` or ``@gg.jit(static_argnums=(1,))``.
    """
    if fn is None:
        return lambda f: jit(f, static_argnums=static_argnums, cuda_graph=cuda_graph)
    if not callable(fn):
        raise TypeError(f"gg.jit: expected a function to compile, got {type(fn).__name__} ({fn!r:.60})")
    return Compiled(fn, static_argnums, cuda_graph)


# -- argument trees ------------------------------------------------------------------------------


_LEAF_TYPES = frozenset({int, float, bool, str, bytes, complex, type(None), np.ndarray, Traced, HostValue})


def _flat(x, leaves):
    """Leaves of a pytree into ``leaves``; returns the structure (hashable). Lists, tuples, dicts
    and namedtuples are walked here; any other container optree knows (``OrderedDict``,
    ``defaultdict``, ``deque``, registered classes) through optree, one level at a time."""
    cls = type(x)
    if cls is list or cls is tuple or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return (cls, tuple(_flat(e, leaves) for e in x))
    if cls is dict:
        return (dict, tuple((k, _flat(v, leaves)) for k, v in x.items()))
    if cls in _LEAF_TYPES or isinstance(x, (Tensor, np.generic)) or backend.is_cupy_array(x):
        leaves.append(x)
        return None
    node = _tree_node(x)
    if node is None:
        leaves.append(x)
        return None
    children, meta, unflatten = node
    return (_TreeNode(cls, meta, unflatten, len(children)), tuple(_flat(c, leaves) for c in children))


def _tree_node(x):
    """``(children, metadata, unflatten)`` when optree knows ``x``'s type as a container."""
    if not hasattr(type(x), "__len__"):  # every container optree walks is sized; skip the import
        return None
    import optree

    try:
        children, meta, _entries, unflatten = optree.tree_flatten_one_level(x, none_is_leaf=True)
    except ValueError:
        return None
    return children, meta, unflatten


class _TreeNode:
    """A container type optree walks, with its metadata (keys, a default factory, maxlen)."""

    __slots__ = ("cls", "meta", "unflatten", "_key")

    def __init__(self, cls, meta, unflatten, n):
        import optree

        self.cls = cls
        self.meta = meta
        self.unflatten = unflatten
        # optree's own structure of this one level (leaves as placeholders): hashable, and equal
        # exactly when the keys, default factory, maxlen or fields are
        self._key = optree.tree_structure(unflatten(meta, [0] * n), none_is_leaf=True)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return type(other) is _TreeNode and self._key == other._key

    def build(self, items):
        return self.unflatten(self.meta, list(items))


def _build(spec, it):
    if spec is None:
        return next(it)
    cls, parts = spec
    if cls is dict:
        return {k: _build(p, it) for k, p in parts}
    items = [_build(p, it) for p in parts]
    if type(cls) is _TreeNode:
        return cls.build(items)
    return cls(*items) if hasattr(cls, "_fields") else cls(items)


class _Static:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _array_key(d):
    if type(d) is np.ndarray:
        return (d.shape, d.dtype)
    return (d.shape, d.dtype, backend.device_of(d))


def _leaf_key(x):
    """What of a leaf selects the program: shape/dtype/device of arrays, values of the rest."""
    if isinstance(x, Tensor):
        if x._is_var:
            return ("V", id(x))
        rg = x._rg
        if rg:
            g = x.grad
            rg = ("G",) if g is None else ("G",) + _array_key(g.data)
        return ("T", rg) + _array_key(x.data)
    if type(x) is np.ndarray or backend.is_cupy_array(x):
        return ("A",) + _array_key(x)
    if type(x) is _Static:
        try:
            hash(x.value)
        except TypeError:
            raise TypeError(
                f"gg.jit: static argument {x.value!r} is not hashable; static arguments select the "
                "program by value"
            ) from None
        return ("S", type(x.value), x.value)
    try:
        hash(x)
    except TypeError:
        raise _Unhashable(x) from None
    return ("P", type(x), x)


class _Unhashable(Exception):
    """A leaf that is neither an array, a pytree nor hashable: it cannot select a program."""


def _unhashable_message(x, args, kwargs) -> str:
    where = "an argument"
    for name, a in [*enumerate(args), *kwargs.items()]:
        found = []
        _flat(a, found)
        if any(f is x for f in found):
            where = f"argument {name!r}" if isinstance(name, str) else f"argument {name}"
            break
    return (
        f"gg.jit: {where} holds a {type(x).__name__} ({x!r:.60}), which is neither an array, a pytree "
        "(list, tuple, dict, namedtuple, OrderedDict or another container optree knows) nor hashable. "
        "A compiled function selects its program by the values of such arguments: pass arrays or "
        "pytrees of arrays, a hashable value, or register the type with optree."
    )


def _is_array_leaf(x) -> bool:
    return (isinstance(x, Tensor) and not x._is_var) or type(x) is np.ndarray or backend.is_cupy_array(x)


# -- the compiled function ---------------------------------------------------------------------------


class Compiled:
    """A function compiled by :func:`jit`; ``trace_count`` says how many traces were made."""

    def __init__(self, fn, static_argnums=(), cuda_graph=True):
        functools.update_wrapper(self, fn)
        self.fn = fn
        if isinstance(static_argnums, int):
            static_argnums = (static_argnums,)
        self.static_argnums = frozenset(int(i) for i in static_argnums)
        self.cuda_graph = bool(cuda_graph)
        self.trace_count = 0
        self._cache: dict = {}

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __repr__(self):
        return f"<gg.jit of {getattr(self.fn, '__qualname__', self.fn)!r}: {self.trace_count} trace(s)>"

    def _signature(self, args, kwargs):
        """(key, array leaves, (leaves, spec)); the last holds only the leaves on the fast path."""
        if not kwargs and not self.static_argnums:
            key = []
            arrays = []
            for a in args:
                if type(a) is not Tensor:
                    break
                d = a.data
                rg = a._rg
                if rg:  # whether backward() will find a .grad to add to selects the program too
                    g = a.grad
                    rg = ("G",) if g is None else ("G",) + _array_key(g.data)
                key.append((d.shape, d.dtype, rg) if type(d) is np.ndarray else (rg,) + _array_key(d))
                arrays.append(d)
            else:
                if len(args) < 2 or len({id(a) for a in args}) == len(args):
                    return tuple(key), arrays, (args, None)
        key, leaves, spec = self._slow_signature(args, kwargs)
        arrays = []
        seen = set()
        for x in leaves:
            if isinstance(x, Tensor):
                if x._is_var or id(x) in seen:
                    continue
                seen.add(id(x))
                arrays.append(x.data)
            elif type(x) is np.ndarray or backend.is_cupy_array(x):
                arrays.append(x)
        return key, arrays, (leaves, spec)

    def _slow_signature(self, args, kwargs):
        if self.static_argnums:
            args = tuple(_Static(a) if i in self.static_argnums else a for i, a in enumerate(args))
        leaves = []
        spec = _flat((args, kwargs), leaves) if kwargs else _flat(args, leaves)
        first = {}
        keys = []
        try:
            for i, x in enumerate(leaves):
                if isinstance(x, Tensor) and not x._is_var:
                    j = first.setdefault(id(x), i)
                    if j != i:  # the same Tensor again: one leaf, as eager code sees it
                        keys.append(("same", j))
                        continue
                keys.append(_leaf_key(x))
        except _Unhashable as e:
            raise TypeError(_unhashable_message(e.args[0], args, kwargs)) from None
        key = (spec, bool(kwargs), tuple(keys))
        return key, leaves, spec

    def __call__(self, *args, **kwargs):
        if _trace.ACTIVE is not None or _STATE.recording:
            # inside another compiled step: part of its trace; under a recording GradientTape: run
            # eagerly, so that the tape records the call and gradients flow through it
            return self.fn(*args, **kwargs)
        key, arrays, slow = self._signature(args, kwargs)
        progs = self._cache.get(key)
        if progs is not None:
            for prog in progs:  # one per state of the Variables it reads (their shapes, a .grad or not)
                try:
                    return prog.run(arrays, slow[0])
                except _Stale:
                    continue
        if slow[1] is None:
            slow = self._slow_signature(args, kwargs)[1:]
        return self._trace(key, slow[0], slow[1], bool(kwargs))

    def _trace(self, key, leaves, spec, has_kwargs):
        self.trace_count += 1
        result, prog = record(self.fn, leaves, spec, has_kwargs, self.cuda_graph)
        if prog is not None:
            progs = self._cache.setdefault(key, [])
            progs.insert(0, prog)
            del progs[_MAX_VARIANTS:]
        return result


_MAX_VARIANTS = 4


# -- tracing ---------------------------------------------------------------------------------------


class _Slot:
    """A Variable (or a ``requires_grad`` Tensor argument) as state of the trace: its array and
    its ``.grad`` as they were when the call began, and their proxies."""

    __slots__ = ("ref", "owner", "real", "proxy", "g0", "greal", "gproxy", "new", "caller")

    def __init__(self, t, var, owner, real, new=False):
        self.ref = weakref.ref(var) if new else (lambda v=var: v)
        self.owner = owner  # the Variable, or ("arg", leaf index) for a Tensor argument
        self.real = real
        self.proxy = t.proxy("var", real) if owner is not None and not isinstance(owner, tuple) else None
        self.new = new
        self.caller = None
        g = self.g0 = var.grad
        self.greal = self.gproxy = None
        if isinstance(g, Tensor) and _is_value(g.data):
            self.greal = g.data
            self.gproxy = t.proxy("grad", g.data)


def _is_value(d) -> bool:
    return type(d) is np.ndarray or isinstance(d, np.generic) or backend.is_cupy_array(d)


def record(fn, leaves, spec, has_kwargs, cuda_graph=False):
    """Run ``fn`` on traced proxies of the array leaves and of every live Variable; returns the
    real result and the :class:`Program` (None when the call cannot be replayed)."""
    if _trace.ACTIVE is not None:
        raise RuntimeError("gg.jit: a trace is already being recorded")
    t = Trace()
    slots = []
    for v in list(LIVE_VARIABLES):
        if type(v.data) is not Traced:
            slots.append(_Slot(t, v, v, v.data))
    arg_bufs = []
    traced_leaves = []
    first = {}  # id(Tensor argument) -> its traced Tensor: one Tensor passed twice is one leaf
    for i, x in enumerate(leaves):
        if isinstance(x, _Static):
            traced_leaves.append(x.value)
        elif _is_array_leaf(x):
            if isinstance(x, Tensor):
                tx = first.get(id(x))
                if tx is None:
                    p = t.proxy("arg", x.data)
                    arg_bufs.append(p._b)
                    tx = first[id(x)] = Tensor._make(p)
                    tx._rg = x._rg
                    if x._rg:  # backward() inside the step accumulates into this argument's .grad
                        s = _Slot(t, x, ("arg", i), None)
                        slots.append(s)
                        tx.grad = s.g0 = None if s.gproxy is None else Tensor._make(s.gproxy)
                        s.ref = (lambda tx=tx: tx)
                        s.caller = x
                traced_leaves.append(tx)
            else:
                p = t.proxy("arg", x)
                arg_bufs.append(p._b)
                traced_leaves.append(p)
        else:
            traced_leaves.append(x)
    args = _build(spec, iter(traced_leaves))
    args, kwargs = args if has_kwargs else (args, {})
    for s in slots:
        if s.proxy is not None:
            s.owner.data = s.proxy
            if s.gproxy is not None:
                s.g0.data = s.gproxy
    accumulated = {}  # id(tensor) -> the .grad that backward() set on it when it had none

    def new_variable(v):  # state created during the call (a layer's weights, optimizer slots)
        d = v.data
        s = _Slot(t, v, v, d._v if type(d) is Traced else d, new=True)
        v.data = s.proxy
        s.owner = None  # held weakly: a Variable that dies with the call is not state
        slots.append(s)

    _trace.ACTIVE = t
    backend._host_hook = t.host
    backend._check_hook = t.check
    backend._array_hook = t.host_array
    backend._call_hook = t.call
    _tensor.NEW_VARIABLE_HOOK = new_variable
    _graph.GRAD_SET_HOOK = lambda x, g: accumulated.__setitem__(id(x), g)
    ok = False
    try:
        out = fn(*args, **kwargs)
        ok = True
    finally:
        _trace.ACTIVE = None
        backend._host_hook = None
        backend._check_hook = None
        backend._array_hook = None
        backend._call_hook = None
        _tensor.NEW_VARIABLE_HOOK = None
        _graph.GRAD_SET_HOOK = None
        if not ok:
            _settle(t, slots, {}, failed=True)
            t.closed = True
    # the outputs, read before the state is settled (a returned .grad is still traced then)
    out_leaves = []
    out_spec = _flat(out, out_leaves)
    real_leaves, out_kinds, out_refs = [], [], []
    for x in out_leaves:
        if isinstance(x, Tensor) and not x._is_var and type(x.data) is Traced:
            real_leaves.append(Tensor._make(x.data._v))
            out_kinds.append("T")
            out_refs.append(x.data._b)
        elif type(x) is Traced or type(x) is HostValue:
            real_leaves.append(x._v)
            out_kinds.append("A")
            out_refs.append(x._b)
        else:
            real_leaves.append(x)
            out_kinds.append(("K", x))
            out_refs.append(None)
    result = _build(out_spec, iter(real_leaves))
    returned = {id(x) for x in out_leaves if isinstance(x, Tensor)}
    del out, out_leaves, args, kwargs, traced_leaves, first
    state, replayable = _settle(t, slots, accumulated, returned=returned)
    t.closed = True
    if not replayable:  # a Variable made by the call died with it or was returned: trace again
        return result, None
    prog = Program(t, arg_bufs, state, out_spec, out_kinds, out_refs, cuda_graph)
    return result, prog


def _settle(t, slots, accumulated, failed=False, returned=()):
    """Put real arrays back into every Variable (and its grad); return the state slots and whether
    the call can be replayed."""
    state = {"var_in": [], "var_out": [], "grad_in": [], "grad_out": [], "checks": []}
    replayable = True
    for s in slots:
        obj = s.ref()  # the Variable, or the traced Tensor that stood for an argument
        if s.new and (obj is None or id(obj) in returned):
            replayable = False  # eager code would make it afresh at every call
        if obj is None:
            continue
        owner = obj if s.new else s.owner
        final = obj.data
        used = changed = False
        if s.proxy is not None:
            used = t.bufs[s.proxy._b].used
            changed = final is not s.proxy
            if failed:
                obj.data = _real(final) if changed else s.real
            elif s.new and not used and not changed:
                obj.data = s.real  # made and never touched again: nothing to replay
                continue
            else:
                if used or s.new:
                    state["var_in"].append((owner, s.proxy._b))
                if changed:
                    if type(final) is Traced and final._t is t:
                        obj.data = final._v
                        state["var_out"].append((owner, final._b, False))
                    else:
                        obj.data = _real(final)
                        state["var_out"].append((owner, t.const(obj.data), True))
                else:
                    obj.data = s.real
        if s.gproxy is not None:
            s.g0.data = s.greal
        g = obj.grad
        if failed:
            if isinstance(g, Tensor) and type(g.data) is Traced:
                g.data = g.data._v
            continue
        grad_used = s.gproxy is not None and t.bufs[s.gproxy._b].used
        grad_changed = g is not s.g0
        if grad_used:
            state["grad_in"].append((owner, s.gproxy._b))
        mode = None
        if grad_changed:
            if g is None:
                state["grad_out"].append((owner, None, "set"))
            elif isinstance(g, Tensor) and type(g.data) is Traced and g.data._t is t:
                b = g.data._b
                g.data = g.data._v
                # backward() gave a Tensor without a grad its first one, and nothing in the step
                # read it: a later call that finds a grad there adds to it, as eager code does
                acc = s.g0 is None and accumulated.get(id(obj)) is g and not _read_after(t, b)
                mode = "acc" if acc and not isinstance(owner, tuple) else "set"
                state["grad_out"].append((owner, b, mode))
            else:
                data = g.data if isinstance(g, Tensor) else g
                state["grad_out"].append((owner, t.const(_real(data)) if data is not None else None, "set"))
            if s.caller is not None:  # this call's gradient, on the caller's Tensor (replays write it too)
                s.caller.grad = g if g is None or isinstance(g, Tensor) else Tensor._make(_real(g))
        if not isinstance(owner, tuple) and (used or changed or grad_used or grad_changed or s.new):
            rule = None if mode == "acc" else s.g0 is None
            state["checks"].append((owner, _array_key(s.real), rule))
    return state, replayable


def _read_after(t, b) -> bool:
    return any(b in ins.reads() for ins in t.instrs)


def _real(x):
    return x._v if type(x) is Traced else x


# -- the program -----------------------------------------------------------------------------------


class _Stale(Exception):
    """A Variable the program reads no longer has the shape, dtype or device it was traced for."""


class Program:
    """A recorded step, simplified, planned and compiled to one Python function."""

    def __init__(self, t: Trace, arg_bufs, state, out_spec, out_kinds, out_refs, cuda_graph):
        self.t = t
        self.arg_bufs = arg_bufs
        self.state = state
        self.out_spec = out_spec
        self.out_kinds = out_kinds
        self.checks = state["checks"]
        bufs = t.bufs
        self.outputs = [r for r in out_refs if r is not None]
        sinks = list(self.outputs)
        sinks += [o for _, o, _ in state["var_out"]]
        sinks += [o for _, o, _ in state["grad_out"] if o is not None]
        self.instrs = _dce(_fold(t.instrs, bufs), bufs, sinks)
        self.needs_leaves = any(isinstance(o, tuple) for o, *_ in state["grad_in"] + state["grad_out"])
        self.storage, self.donate = _plan(self.instrs, bufs, sinks, state, set(self.outputs))
        self.source, self.replay, self.raw = _codegen(self)
        self.cuda = cuda_graph and any(backend.is_cupy_array(b.value) for b in bufs if b.kind == "arg")
        self._graph = None
        self.const_bufs = {b.i: b.value for b in bufs if b.kind == "const"}
        self.t.bufs = None  # the trace-time arrays are not needed any more
        for b in bufs:
            if b.kind not in ("const",):
                b.value = None

    def run(self, arrays, leaves=None):
        if self.needs_leaves:  # it reads or writes .grad of Tensor arguments
            return self.replay(*arrays, _L=leaves)
        if self.cuda:
            return self._run_cuda(arrays)
        return self.replay(*arrays)

    def build(self, flat):
        """The returned structure from the flat outputs of :attr:`raw`."""
        it = iter(flat)
        leaves = []
        for k in self.out_kinds:
            if k == "T":
                leaves.append(Tensor._make(next(it)))
            elif k == "A":
                leaves.append(next(it))
            else:
                leaves.append(k[1])
        return _build(self.out_spec, iter(leaves))

    def _run_cuda(self, arrays):
        g = self._graph
        if g is None:
            from ._cuda_graph import GraphRunner

            try:
                g = self._graph = GraphRunner(self, arrays)
            except Exception as e:  # noqa: BLE001 - any capture failure: plain replay, never wrong
                warnings.warn(
                    f"gg.jit: CUDA graph capture failed ({type(e).__name__}: {e}); replaying op by op",
                    RuntimeWarning,
                    stacklevel=4,
                )
                self.cuda = False
                return self.replay(*arrays)
        return g.run(arrays)


# -- passes ----------------------------------------------------------------------------------------


def _fold(instrs, bufs):
    """Calls whose inputs are all constants become constants (their trace-time value)."""
    written = set()
    for ins in instrs:
        for w in ins.writes:
            written.add(bufs[w].root)
    out = []
    for ins in instrs:
        if not ins.host and not ins.writes:
            reads = ins.reads()
            if all(bufs[r].kind == "const" and bufs[r].root not in written for r in reads) and not any(
                bufs[f].root in written for f in ins.fresh
            ):
                for f in ins.fresh:
                    bufs[f].kind = "const"
                continue
        out.append(ins)
    return out


_PINNED = ("arg", "var", "grad", "const")


def _dce(instrs, bufs, sinks):
    """Drop the calls that no output, Variable or side effect needs."""
    live_bufs = set(sinks)
    live_roots = {bufs[s].root for s in sinks}
    keep = []
    for ins in reversed(instrs):
        side = ins.host or any(bufs[bufs[w].root].kind in _PINNED for w in ins.writes)
        needed = side or any(f in live_bufs for f in ins.fresh) or any(
            bufs[w].root in live_roots for w in ins.writes
        ) or (isinstance(ins.out, Ref) and ins.out.i in live_bufs)
        if not needed:
            continue
        keep.append(ins)
        for r in ins.reads():
            live_bufs.add(r)
            live_roots.add(bufs[r].root)
        for w in ins.writes:
            live_roots.add(bufs[w].root)
    keep.reverse()
    return keep


def _plan(instrs, bufs, sinks, state, outputs):
    """Give planned results a reusable buffer (``out=``), by liveness; pick Variable updates that
    may write into the Variable's own array."""
    escaping = {bufs[s].root for s in sinks}
    last = {}
    for i, ins in enumerate(instrs):
        for r in ins.reads():
            last[bufs[r].root] = i
        for w in ins.writes:
            last[bufs[w].root] = i
        for f in ins.fresh:
            last.setdefault(bufs[f].root, i)
    # a Variable update that may write into the Variable's array (when nothing else holds it)
    donate = {}
    var_in = {id(v): b for v, b in state["var_in"]}
    for v, o, is_const in state["var_out"]:
        vi = var_in.get(id(v))
        if is_const or vi is None or o in outputs:
            continue
        for i, ins in enumerate(instrs):
            if o in ins.fresh:
                ok = (
                    ins.plan and isinstance(ins.fn, np.ufunc) and bufs[o].root == o
                    and _same_layout(bufs[o].value, bufs[vi].value) and last.get(bufs[vi].root, -1) <= i
                    and vi in ins.reads()
                )
                if ok:
                    views = sum(
                        1 for j in range(i) for f in instrs[j].fresh if bufs[f].root == vi and f != vi
                    )
                    donate[i] = (vi, 3 + views)
                break
    storage = {}  # instruction index -> storage array
    pool: dict = {}
    held = {}  # root -> storage
    ends: dict = {}
    for root, i in last.items():
        ends.setdefault(i, []).append(root)
    for i, ins in enumerate(instrs):
        if ins.plan and i not in donate:
            f = ins.fresh[0]
            b = bufs[f]
            v = b.value
            if b.root == f and f not in escaping and _plannable(v):
                key = (v.shape, v.dtype, backend.device_of(v))
                free = pool.get(key)
                s = free.pop() if free else _empty_like(v)
                storage[i] = s
                held[f] = s
        for root in ends.get(i, ()):
            s = held.pop(root, None)
            if s is not None:
                v = s
                pool.setdefault((v.shape, v.dtype, backend.device_of(v)), []).append(s)
    return storage, donate


def _plannable(v) -> bool:
    if type(v) is np.ndarray:
        return v.flags.c_contiguous and v.size > 0
    return backend.is_cupy_array(v) and v.flags.c_contiguous and v.size > 0


def _same_layout(a, b) -> bool:
    return (
        a is not None and b is not None and type(a) is type(b) and hasattr(a, "flags")
        and a.shape == b.shape and a.dtype == b.dtype and a.flags.c_contiguous and b.flags.c_contiguous
    )


def _empty_like(v):
    return backend.get_array_module(v).empty(v.shape, dtype=v.dtype)


# -- code generation -------------------------------------------------------------------------------


_INLINE = (int, bool, str, type(None))


class _Names:
    def __init__(self):
        self.globals = {}
        self.by_id = {}

    def obj(self, x, prefix="k"):
        k = self.by_id.get(id(x))
        if k is None:
            k = f"{prefix}{len(self.globals)}"
            self.globals[k] = x
            self.by_id[id(x)] = k
        return k

    def render(self, x):
        if isinstance(x, Ref):
            return f"b{x.i}"
        cls = type(x)
        if cls is tuple or cls is list:
            inner = ", ".join(self.render(e) for e in x)
            if cls is list:
                return f"[{inner}]"
            return f"({inner},)" if len(x) == 1 else f"({inner})"
        if cls is dict and all(type(k) is str for k in x):
            return "{" + ", ".join(f"{k!r}: {self.render(v)}" for k, v in x.items()) + "}"
        if cls in _INLINE or (cls is float and np.isfinite(x)):
            return repr(x)
        return self.obj(x)


def _codegen(prog: Program):
    """The replay as Python source, compiled: one line per array call."""
    bufs = prog.t.bufs
    names = _Names()
    for b in bufs:
        if b.kind == "const":
            names.globals[f"b{b.i}"] = b.value
    names.globals["_rc"] = sys.getrefcount
    names.globals["_T"] = Tensor._make
    names.globals["_Stale"] = _Stale
    names.globals["_checks"] = True
    body = []
    params = [f"b{i}" for i in prog.arg_bufs]
    if prog.needs_leaves:
        params.append("_L=None")

    def owner(o):
        if isinstance(o, tuple):  # ("arg", i): the caller's Tensor argument
            return f"_L[{o[1]}]"
        return names.obj(o, "V")

    for v, key, grad_none in prog.checks:  # the Variables still fit the program
        vn = owner(v)
        cond = f"{vn}.data.shape != {key[0]!r} or {vn}.data.dtype != {names.obj(key[1])}"
        if len(key) > 2:
            names.globals["_dev"] = backend.device_of
            cond += f" or _dev({vn}.data) != {key[2]!r}"
        if grad_none is not None:
            cond += f" or ({vn}.grad is None) is not {grad_none!r}"
        body.append(f"if {cond}: raise _Stale")
    for v, b in prog.state["var_in"]:
        body.append(f"b{b} = {owner(v)}.data")
    for v, b in prog.state["grad_in"]:
        body.append(f"b{b} = {owner(v)}.grad.data")
    for i, ins in enumerate(prog.instrs):
        out_kw = None
        if i in prog.storage:
            out_kw = names.obj(prog.storage[i], "s")
        elif i in prog.donate:
            vi, k = prog.donate[i]
            out_kw = f"(b{vi} if _rc(b{vi}) <= {k} else None)"
        code = _line(ins, names, out_kw)
        if ins.host and ins.out is None:  # a value check (skipped inside a CUDA graph capture)
            code = [f"if _checks: {c}" for c in code]
        body.extend(code)
    for v, o, is_const in prog.state["var_out"]:
        vn = owner(v)
        body.append(f"{vn}.data = b{o}.copy()" if is_const else f"{vn}.data = b{o}")
        body.append(f"{vn}._version += 1")
    for v, o, mode in prog.state["grad_out"]:
        vn = owner(v)
        if o is None:
            body.append(f"{vn}.grad = None")
        elif mode == "acc":  # backward() into a .grad: set it, or add to the one found there
            names.globals["_acc"] = _accumulate_grad
            body.append(f"{vn}.grad = _acc({vn}.grad, b{o})")
        else:
            body.append(f"{vn}.grad = _T(b{o})")
    raw = "(" + "".join(f"b{o}, " for o in prog.outputs) + ")"
    ret = _render_out(prog, names)
    errs = [ins.err for ins in prog.instrs if ins.err is not None]
    lines = [f"def _replay({', '.join(params)}):"]
    if errs:  # floating-point warnings: ignored where any recorded call ignored them
        e = {k: ("ignore" if any(x.get(k) == "ignore" for x in errs) else v) for k, v in prog.t.err0.items()}
        names.globals["_seterr"] = np.seterr
        lines.append(f"    _old = _seterr(**{e!r})")
        lines.append("    try:")
        lines += ["        " + s for s in body]
        lines.append(f"        return {ret}")
        lines.append("    finally:")
        lines.append("        _seterr(**_old)")
    else:
        lines += ["    " + s for s in body]
        lines.append(f"    return {ret}")
    src = "\n".join(lines) + "\n"
    glb = dict(names.globals)
    exec(compile(src, "<gg.jit replay>", "exec"), glb)  # noqa: S102 - our own generated code
    raw_src = src.replace("def _replay(", "def _raw(").replace(f"return {ret}", f"return {raw}")
    exec(compile(raw_src, "<gg.jit replay>", "exec"), glb)  # noqa: S102
    return src, glb["_replay"], glb["_raw"]


def _accumulate_grad(g, new):
    """``.grad`` after backward() adds ``new``: ``new`` itself where there was none."""
    if g is None:
        return Tensor._make(new)
    d = g.data
    if type(d) is not type(new) or d.shape != new.shape or d.dtype != new.dtype:
        return g + Tensor._make(new)  # as eager code adds (promotion, broadcasting, its errors)
    return Tensor._make(d + new)


def _render_out(prog, names):
    """The returned structure as an expression over the buffers."""
    it = iter(prog.outputs)
    leaves = []
    for k in prog.out_kinds:
        if k == "T":
            leaves.append(f"_T(b{next(it)})")
        elif k == "A":
            leaves.append(f"b{next(it)}")
        else:
            leaves.append(names.render(k[1]) if type(k[1]) in _INLINE else names.obj(k[1]))

    def build(spec, it):
        if spec is None:
            return next(it)
        cls, parts = spec
        if cls is dict:
            return "{" + ", ".join(f"{k!r}: {build(p, it)}" for k, p in parts) + "}"
        items = ", ".join(build(p, it) for p in parts)
        if type(cls) is _TreeNode:
            return f"{names.obj(cls)}.build(({items},))"
        if cls is list:
            return f"[{items}]"
        if cls is tuple:
            return f"({items},)" if len(parts) == 1 else f"({items})"
        return f"{names.obj(cls)}(*({items},))" if hasattr(cls, "_fields") else f"{names.obj(cls)}(({items},))"

    return build(prog.out_spec, iter(leaves))


def _line(ins, names, out_kw):
    fn = ins.fn
    args = list(ins.args)
    kw = dict(ins.kwargs)
    if out_kw is not None:
        kw["out"] = None  # placeholder, rendered below
    parts = [names.render(a) for a in (args[1:] if isinstance(fn, tuple) and fn[0] == "method" else args)]
    for k, v in kw.items():
        parts.append(f"{k}={out_kw}" if k == "out" and out_kw is not None else f"{k}={names.render(v)}")
    inner = ", ".join(parts)
    if isinstance(fn, tuple):
        if fn[0] == "method":
            call = f"{names.render(args[0])}.{fn[1]}({inner})"
        elif fn[0] == "getitem":
            call = f"{names.render(args[0])}[{names.render(args[1])}]"
        else:
            return [f"{names.render(args[0])}[{names.render(args[1])}] = {names.render(args[2])}"]
    else:
        call = f"{names.obj(fn, 'f')}({inner})"
    out = ins.out
    if out is None or not _has_ref(out):
        return [call]
    if isinstance(out, Ref):
        return [f"b{out.i} = {call}"]
    if type(out) in (tuple, list) and all(isinstance(o, Ref) for o in out) and out:
        return [", ".join(f"b{o.i}" for o in out) + (", = " if len(out) == 1 else " = ") + call]
    lines = [f"_r = {call}"]
    for path, ref in _paths(out, ()):
        lines.append(f"b{ref.i} = _r" + "".join(f"[{p!r}]" for p in path))
    return lines


def _has_ref(x) -> bool:
    acc = []
    _trace._collect(x, acc)
    return bool(acc)


def _paths(x, path):
    if isinstance(x, Ref):
        yield path, x
    elif type(x) in (tuple, list):
        for k, e in enumerate(x):
            yield from _paths(e, path + (k,))
    elif type(x) is dict:
        for k, e in x.items():
            yield from _paths(e, path + (k,))
