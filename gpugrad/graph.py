"""The recorded graph and the backward walk shared by the tape, autograd and functional APIs.

An op records a :class:`Node` on its output only when some input is tracked: watched by (or
computed on) a recording tape, or ``requires_grad``. A node keeps its inputs and a backward
function written in gpugrad ops, so running it under an outer tape (or ``create_graph=True``)
records the backward pass too: that is how every order of derivative works.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from weakref import ref as _weakref

from .tensor import Tensor

EMPTY = frozenset()


class _State(threading.local):
    def __init__(self):
        self.enabled = True  # False under no_grad / while a backward pass runs without create_graph
        self.recording = EMPTY  # ids of the tapes now recording
        self.autowatch = ()  # the recording tapes that watch trainable Variables when read
        self.logs = {}  # id of a recording graph -> the list its nodes are appended to


STATE = _State()
GRAD_SET_HOOK = None  # set by gg.jit while it traces: told when backward() gives a leaf its first .grad


_seq = itertools.count()
_ids = itertools.count(1)


def new_graph_id() -> int:
    """A fresh id for a graph recorded by a tape (or by :func:`composed_vjp`); never reused."""
    return next(_ids)


class Node:
    """One recorded op: its inputs, a backward function and which graphs it belongs to.

    ``backward(g, out, need)`` returns one gradient (a Tensor or None) per input, where ``need``
    says which inputs want one. ``fast``, where an op gives one, is the same rule on arrays
    (``g`` an array, arrays or None back; None as a whole: use ``backward``): a backward pass that
    nothing records (a first-order gradient) runs it and makes no Tensor on the way.
    """

    __slots__ = ("inputs", "backward", "fast", "tapes", "rg", "versions", "freed", "name", "seq", "out", "__weakref__")

    def __init__(self, inputs, backward, tapes, rg, name, fast=None):
        self.seq = next(_seq)  # creation order: a node's inputs were all made before it
        self.inputs = inputs
        self.backward = backward
        self.fast = fast
        self.tapes = tapes
        self.rg = rg
        self.freed = False
        self.name = name
        self.versions = None
        self.out = _no_output

    def __repr__(self):
        return f"<{self.name}Backward>"

    def release(self):
        """Drop what the node keeps for the backward pass (inputs, saved arrays in the closure);
        the tensor it belongs to keeps its value only. (The compiled engine's ``release`` does the
        same.)"""
        self.inputs = None
        self.backward = None
        self.fast = None
        self.versions = None


_new = object.__new__


def _no_output():
    return None


def record(out_data, inputs: tuple, backward, name: str = "Op", fast=None) -> Tensor:
    """Wrap ``out_data`` in a Tensor and, if any input is tracked, record how to differentiate it.

    ``inputs`` may hold Python numbers (constants); only Tensors are tracked. ``fast`` is the
    backward on arrays (see :class:`Node`). This is the hot path of every op: with nothing
    tracked it costs a loop over the inputs.
    """
    out = _new(Tensor)
    out.data = out_data
    out._node = None
    out._rg = False
    out._tapes = None
    out._grad = None
    # the state's fields read from this thread's dict: one thread-local lookup, not four
    st = STATE.__dict__
    if not st["enabled"]:
        return out
    rec = st["recording"]
    rg = False
    seen = None
    has_var = False
    if not rec:
        for x in inputs:
            if isinstance(x, Tensor) and x._rg:
                rg = True
                break
        else:
            return out
        for x in inputs:
            if isinstance(x, Tensor) and x._is_var:
                has_var = True
                break
    else:
        autowatch = st["autowatch"]
        for x in inputs:
            if not isinstance(x, Tensor):
                continue
            if x._rg:
                rg = True
            if x._is_var:
                has_var = True
                t = _autowatch(x, autowatch) if autowatch else x._tapes
            else:
                t = x._tapes
            if t:
                if seen is None:
                    seen = t
                elif t is not seen and not t <= seen:
                    seen = seen | t
        if seen is not None and seen is not rec and not seen <= rec:  # tapes no longer recording drop out
            seen = seen & rec or None
        if seen is None and not rg:
            return out
    if out_data.dtype.kind not in "fc":
        return out  # integer and bool results are never differentiated
    node = _new(Node)  # Node.__init__, inlined
    node.seq = next(_seq)
    node.inputs = inputs
    node.backward = backward
    node.fast = fast
    node.tapes = seen
    node.rg = rg
    node.freed = False
    node.name = name
    node.versions = None
    if seen is not None:  # each tape lists its nodes (weakly), to release them when it is released
        logs = st["logs"]
        ref = _weakref(node)
        for tid in seen:
            log = logs.get(tid)
            if log is not None:
                log.append(ref)
    if has_var:
        node.versions = [(v, v._version) for v in inputs if isinstance(v, Tensor) and v._is_var]
    node.out = _weakref(out)
    out._node = node
    out._tapes = seen
    out._rg = rg
    return out


def _autowatch(var, tapes):
    if var.trainable:
        have = var._tapes or EMPTY
        for tape in tapes:
            if tape._id not in have:
                tape._watch_one(var)
    return var._tapes


@contextlib.contextmanager
def no_grad():
    """Nothing inside is recorded by any tape or for autograd."""
    st = STATE
    prev = st.enabled
    st.enabled = False
    try:
        yield
    finally:
        st.enabled = prev


@contextlib.contextmanager
def enable_grad():
    st = STATE
    prev = st.enabled
    st.enabled = True
    try:
        yield
    finally:
        st.enabled = prev


def _check_versions(node):
    for var, v in node.versions:
        if var._version != v:
            raise RuntimeError(
                f"a Variable{' ' + repr(var.name) if var.name else ''} of shape {var.shape} needed for "
                f"this gradient ({node.name}) was modified by an assign after it was used: it is at "
                f"version {var._version}, the graph saved version {v}. Take the gradient before "
                "assigning, or compute the forward pass again."
            )


FREED = _FREED = (
    "Trying to backward through the graph a second time (or to reach values that were already "
    "freed). Specify retain_graph=True the first time you call backward or autograd.grad if you "
    "need to go through the graph again."
)


def keeps(node, tape_id) -> bool:
    """Whether ``node`` belongs to the graph of tape ``tape_id`` (None: the requires_grad graph)."""
    if tape_id is None:
        if node.freed:  # True, or why there is no graph (a compiled step's result)
            raise RuntimeError(node.freed if isinstance(node.freed, str) else _FREED)
        return node.rg
    t = node.tapes
    return t is not None and tape_id in t and node.inputs is not None


def release_graph(tape_id: int, nodes: list) -> None:
    """Release the graph of tape ``tape_id`` (weak references to the nodes it recorded): each node
    leaves it, and a node that no other tape (nor the ``requires_grad`` graph) holds drops its
    inputs and saved arrays, even while the tensor it produced stays alive."""
    for ref in nodes:  # each leaves the graph; one that no graph holds any more is freed
        node = ref()
        if node is not None:
            _leave(node, tape_id)
    nodes.clear()


def _leave(node, tape_id) -> None:
    """``node`` leaves the graph of tape ``tape_id``, and is freed once no graph holds it."""
    t = node.tapes
    if t is not None and tape_id in t:
        t = t - {tape_id} if len(t) > 1 else None
        node.tapes = t
        if t is None and not node.rg:
            node.release()


def start_graph(tape_id: int, nodes: list) -> None:
    """Record the nodes of graph ``tape_id`` from now on (appended to ``nodes``)."""
    st = STATE
    st.logs[tape_id] = nodes
    st.recording = st.recording | {tape_id}


def stop_graph(tape_id: int) -> None:
    st = STATE
    st.recording = st.recording - {tape_id}
    st.logs.pop(tape_id, None)


def composed_vjp(fn, inputs, cotangent, need):
    """Gradients of ``fn(*inputs)`` weighted by ``cotangent``, found by recording ``fn`` again.

    ``need`` says which inputs want a gradient (the others get None). The backward of a fused
    kernel op (or a custom gradient) uses this for its own backward: the recomputation and its
    backward are recorded by whatever outer tape or ``create_graph`` asked for a higher order,
    and the inner graph is released before returning.
    """
    tid = new_graph_id()
    me = frozenset((tid,))
    st = STATE
    marked = [x for x, m in zip(inputs, need) if m and isinstance(x, Tensor)]
    for x in marked:
        x._tapes = (x._tapes or EMPTY) | me
    nodes: list = []
    enabled = st.enabled
    st.enabled = True
    start_graph(tid, nodes)
    try:
        out = fn(*inputs)
    finally:
        stop_graph(tid)
        st.enabled = enabled
        for x in marked:
            x._tapes = (x._tapes or EMPTY) - me or None
    try:
        if not isinstance(out, Tensor):
            raise TypeError(f"composed_vjp: the function returned {type(out).__name__}, not a Tensor")
        seed = cotangent if isinstance(cotangent, Tensor) else Tensor(cotangent, dtype=out.dtype, device=out.device)
        if seed.shape != out.shape:
            raise ValueError(f"composed_vjp: cotangent of shape {seed.shape} for an output of shape {out.shape}")
        if st.recording or not st.enabled:
            got = walk([out], [seed], marked, tid, False, nodes)
        else:  # nothing records the backward pass: build no graph while it runs
            st.enabled = False
            try:
                got = walk([out], [seed], marked, tid, False, nodes)
            finally:
                st.enabled = True
    finally:
        release_graph(tid, nodes)
    return tuple(got.get(id(x)) if m and isinstance(x, Tensor) else None for x, m in zip(inputs, need))


def walk(targets, seeds, sources, tape_id, retain: bool, log=None):
    """Backpropagate ``seeds`` from ``targets`` to ``sources``; returns ``{id(source): grad}``.

    The graph is the nodes recorded on tape ``tape_id`` (``log``: the list of weak references
    its nodes were appended to, in the order they were made), or with ``tape_id=None`` the
    ``requires_grad`` graph. Nodes passed are released unless ``retain``.

    A tape's log is already an order in which every node comes after its inputs' nodes, so its
    walk is one reverse sweep over it. The ``requires_grad`` graph has no log: a post-order DFS
    from the targets (iterative) finds its nodes, sorted by creation, then the same sweep.

    When nothing records the pass (recording is off: a first-order gradient), the sweep carries
    arrays, not Tensors: each node's ``fast`` rule runs where it has one, and only the gradients
    handed back are wrapped. Otherwise every step is a recorded op, for higher orders.
    """
    if tape_id is not None and log is not None:
        return _sweep(targets, seeds, sources, tape_id, retain, log=log)
    return _sweep(targets, seeds, sources, tape_id, retain, order=_dfs_order(targets, tape_id))


def _tape_order(log, tape_id):
    """The nodes of a tape's graph, last made first, each with its output (nodes whose output
    is gone are skipped: nothing can pass a gradient to them)."""
    for ref in reversed(log):
        n = ref()
        if n is not None:
            tp = n.tapes
            if tp is not None and tape_id in tp and n.inputs is not None:
                t = n.out()
                if t is not None:
                    yield t, n


def _dfs_order(targets, tape_id):
    """The ``requires_grad`` graph's nodes reachable from ``targets``, last made first."""
    seen = {id(t) for t in targets}
    mark = seen.add
    stack = list(targets)
    push = stack.append
    pop = stack.pop
    kept = []
    keep = kept.append
    while stack:
        t = pop()
        n = t._node
        if n is None:
            continue
        if tape_id is None:
            if n.freed:  # True, or why there is no graph (a compiled step's result)
                raise RuntimeError(n.freed if isinstance(n.freed, str) else _FREED)
            if not n.rg:
                continue
        else:
            tp = n.tapes
            if tp is None or tape_id not in tp or n.inputs is None:
                continue
        for x in n.inputs:
            if isinstance(x, Tensor):
                k = id(x)
                if k not in seen:
                    mark(k)
                    push(x)
        keep((n.seq, t, n))
    kept.sort(reverse=True)
    return [(t, n) for _, t, n in kept]


def _sweep(targets, seeds, sources, tape_id, retain, log=None, order=None):
    """The backward sweep over a tape's ``log`` or over ``order`` ((output, node) pairs, last made
    first); returns ``{id(source): grad}``. An input wants a gradient (``need``) if it is a source
    or the output of a node of this graph."""
    source_ids = {id(s) for s in sources}
    arrays = not STATE.enabled
    grads = {}
    # the tensors that got a gradient stay alive until the sweep is done: releasing a node drops
    # its inputs, and an input must still be there when its own node's turn comes
    held = []
    for t, g in zip(targets, seeds):
        _accumulate(grads, t, g.data if arrays else g)
    if ENGINE is not None:
        ENGINE.sweep(grads, source_ids, tape_id, retain, arrays, held, log, order)
    else:
        _sweep_loop(grads, source_ids, tape_id, retain, arrays, held,
                    _tape_order(log, tape_id) if log is not None else order)
    have = grads.get
    if arrays:
        return {sid: None if (g := have(sid)) is None else _plain(g) for sid in source_ids}
    return {sid: have(sid) for sid in source_ids}


def _sweep_loop(grads, source_ids, tape_id, retain, arrays, held, order):
    """The loop of the sweep (the reference of the compiled engine's ``sweep``; the hot path of
    every backward pass: names are bound locally, and each input's id is taken once)."""
    have = grads.get
    hold = held.append
    for t, n in order:
        k = id(t)
        g = have(k)
        if g is None:
            continue
        if k not in source_ids:
            del grads[k]
        inputs = n.inputs
        ids = []
        mask = []
        for x in inputs:
            if isinstance(x, Tensor):
                i = id(x)
                xn = x._node
                if i in source_ids:
                    m = True
                elif xn is None:
                    m = False
                elif tape_id is None:
                    m = xn.rg
                else:
                    m = (tp := xn.tapes) is not None and tape_id in tp
                ids.append(i)
                mask.append(m)
            else:
                ids.append(0)
                mask.append(False)
        if n.versions:
            _check_versions(n)
        if not arrays:
            gin = n.backward(g, t, mask)
        elif n.fast is None or (gin := n.fast(g, t, mask)) is None:
            gin = _by_backward(n, g, t, mask)
        for x, i, m, gx in zip(inputs, ids, mask, gin):
            if m and gx is not None:
                xd = x.data
                gd = gx if arrays else gx.data
                if gd.dtype is not xd.dtype and gd.dtype != xd.dtype:  # the op promoted (mixed dtypes)
                    gx = gx.astype(xd.dtype)
                    gd = gx if arrays else gx.data
                prev = have(i)
                if prev is None:
                    if gd.shape != xd.shape:
                        _shape_error(n, gd, x)
                    grads[i] = gx
                    hold(x)
                else:
                    grads[i] = prev + gx
        if retain:
            continue
        if tape_id is None:
            if n.rg:
                n.freed = True
                if not n.tapes:
                    n.release()
        else:
            _leave(n, tape_id)


def _by_backward(n, g, t, mask):
    """A node's gradients on arrays from its recorded rule (for nodes with no rule on arrays)."""
    return [None if gx is None else gx.data for gx in n.backward(_plain(g), t, mask)]


def _shape_error(n, gd, x):
    raise RuntimeError(
        f"internal error in the backward of {n.name}: gradient of shape {gd.shape} for an input of shape {x.shape}"
    )


_plain = Tensor._make  # an array as a Tensor of no graph


def _accumulate(grads, x, g):
    k = id(x)
    prev = grads.get(k)
    if prev is None:
        if g.shape != x.shape:
            raise RuntimeError(
                f"internal error: gradient of shape {g.shape} for an input of shape {x.shape}"
            )
        grads[k] = g
    else:
        grads[k] = prev + g


record_py = record  # the reference (and what runs where the compiled engine cannot be built)


def _load_engine():
    """The compiled engine (:mod:`gpugrad.native`) bound to this module's classes and state, or
    None: the Python loops above then run (no compiler or headers, or ``GPUGRAD_NATIVE=0``)."""
    from . import native

    mod = native.load()
    if mod is not None:
        mod.setup(Tensor, Node, STATE, _seq, _autowatch, _by_backward, _shape_error, _check_versions)
    return mod


ENGINE = _load_engine()
if ENGINE is not None:
    record = ENGINE.record
