"""Recording a call: every argument array and live Variable becomes a traced proxy, the function
runs once for real, and what it did to Variables and ``.grad`` becomes the program's state."""

from __future__ import annotations

import weakref

import numpy as np

from .. import backend
from .. import graph as _graph
from .. import tensor as _tensor
from ..tensor import GRAD_LEAVES, LIVE_VARIABLES, Tensor
from . import program as _program
from . import trace as _trace
from .program import Program
from .trace import HostValue, Trace, Traced
from .trees import _array_key, _build, _flat, _is_array_leaf, _Static


class _Slot:
    """A Variable as state of the trace: its array and its ``.grad`` as they were when the call
    began, and their proxies; for a ``requires_grad`` Tensor (an argument, or one the step reaches
    otherwise, such as a PyTorch-style parameter), its ``.grad`` only."""

    __slots__ = ("ref", "owner", "real", "proxy", "g0", "greal", "gproxy", "new", "caller")

    def __init__(self, t, var, owner, real, new=False, grad_only=False):
        self.ref = weakref.ref(var) if new else (lambda v=var: v)
        self.owner = owner  # the Variable or Tensor, or ("arg", leaf index) for a Tensor argument
        self.real = real
        state = owner is not None and not isinstance(owner, tuple) and not grad_only
        self.proxy = t.proxy("var", real) if state else None
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
    for x in list(GRAD_LEAVES):  # requires_grad Tensors the step may backward() into and update
        if id(x) not in first and x._rg and type(x.data) is not Traced:
            slots.append(_Slot(t, x, x, x.data))  # PyTorch-style optimizers also replace its .data
    args = _build(spec, iter(traced_leaves))
    args, kwargs = args if has_kwargs else (args, {})
    for s in slots:
        if s.proxy is not None:
            s.owner.data = s.proxy
        if s.gproxy is not None and not isinstance(s.owner, tuple):
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
            kind = "T"
            if x._rg and x._node is not None:  # eager code would hand back a graph: say why there is none
                kind = ("G", _graph.FREED if x._node.freed else NO_GRAPH)
            real_leaves.append(_program.output_tensor(x.data._v, kind))
            out_kinds.append(kind)
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


NO_GRAPH = (
    "this tensor was returned by a compiled step (gg.jit): it requires grad, as eager code's result "
    "would, but a compiled step keeps no graph to differentiate. Call backward() inside the step, or "
    "differentiate the call from outside under a GradientTape or gg.grad (the step then runs eagerly)."
)


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
            state["checks"].append((owner, None if s.real is None else _array_key(s.real), rule))
    return state, replayable


def _read_after(t, b) -> bool:
    return any(b in ins.reads() for ins in t.instrs)


def _real(x):
    return x._v if type(x) is Traced else x


