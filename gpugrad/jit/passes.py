"""Rewrites of a recorded step before its buffers are planned: common subexpressions merged, a
ReLU's backward reading the ReLU's output instead of its input, and one-per-row picks on NumPy
arrays as plain fancy indexing (see :class:`gpugrad.jit.program.Program`).

Both rewrite only calls whose operands and results no call writes in place: then a value read at
one point of the program is the value read at any other, and reading one buffer for another
changes no result.
"""

from __future__ import annotations

import numpy as np

from .trace import Instr, Ref, _collect

# array functions (NumPy's or CuPy's, by name) that compute their result from their operands
# alone: no state, no draw, no write, no new array that a caller may fill (``empty``, ``zeros``)
PURE_FUNCS = frozenset({
    "take_along_axis", "where", "matmul", "dot", "einsum", "tensordot", "transpose", "swapaxes", "reshape",
    "broadcast_to", "expand_dims", "squeeze", "concatenate", "stack", "sum", "mean", "amax", "amin", "max",
    "min", "clip", "isfinite", "log", "exp", "take",
})
PURE_METHODS = frozenset({"sum", "max", "min", "mean", "prod", "swapaxes", "transpose", "reshape", "astype", "ravel"})


def _pure(fn) -> bool:
    """Whether a recorded call of ``fn`` is a pure function of its operands (may be merged)."""
    if isinstance(fn, tuple):
        return fn[0] == "getitem" or (fn[0] == "method" and fn[1] in PURE_METHODS)
    module = getattr(fn, "__module__", None) or type(fn).__module__ or ""
    if module.split(".")[0] in ("numpy", "cupy") or ".simulated_cuda" in module:
        if getattr(fn, "nout", None) == 1:  # a ufunc
            return True
        return getattr(fn, "__name__", None) in PURE_FUNCS
    if module == "gpugrad.kernels":  # the activation and loss kernels: arrays in, new arrays out
        name = getattr(fn, "__name__", "")
        return name.endswith(("_fwd", "_bwd", "_bwd_bwd")) and "rand" not in name
    return False


def _written_roots(instrs, bufs) -> set:
    roots = set()
    for ins in instrs:
        for w in ins.writes:
            roots.add(bufs[w].root)
    return roots


class _Unkeyable(Exception):
    pass


def _key(x, rename):
    """A hashable stand-in for an argument: buffers by (renamed) number, values by type and value."""
    if isinstance(x, Ref):
        return ("R", rename.get(x.i, x.i))
    cls = type(x)
    if cls in (list, tuple):
        return (cls.__name__,) + tuple(_key(e, rename) for e in x)
    if cls is dict:
        return ("dict",) + tuple((k, _key(v, rename)) for k, v in sorted(x.items(), key=lambda kv: repr(kv[0])))
    if isinstance(x, float) and x != x:
        raise _Unkeyable  # NaN equals nothing: such calls are left alone
    try:
        hash(x)
    except TypeError:
        return ("id", id(x))  # the very same object (kept alive by the instruction holding it)
    return (cls, x)


def _swap(x, rename):
    if isinstance(x, Ref):
        j = rename.get(x.i)
        return x if j is None else Ref(j)
    if type(x) in (list, tuple):
        return type(x)(_swap(e, rename) for e in x)
    if type(x) is dict:
        return {k: _swap(v, rename) for k, v in x.items()}
    return x


def _renamed(ins, rename):
    if not rename:
        return ins
    args, kwargs = _swap(ins.args, rename), _swap(ins.kwargs, rename)
    if args == ins.args and kwargs == ins.kwargs:
        return ins
    return Instr(ins.fn, args, kwargs, ins.out, ins.writes, ins.fresh, ins.plan, ins.host, ins.err)


def cse(instrs, bufs, sinks):
    """Merge each pure call that repeats an earlier one (the same function on the same operands)
    into it: later readers read the earlier result. Left alone: calls on the host, calls that
    write, calls whose operands or results anything writes in place, calls that read no buffer
    (a constructor's fresh array may be meant for filling), and results the step hands out."""
    written = _written_roots(instrs, bufs)
    sink_set = set(sinks)
    seen: dict = {}
    rename: dict = {}  # merged buffer -> the earlier one
    out = []
    for ins in instrs:
        ins = _renamed(ins, rename)
        refs = []
        _collect(ins.out, refs)
        reads = ins.reads()
        mergeable = (
            not ins.host and not ins.writes and refs and sorted(refs) == sorted(ins.fresh) and reads
            and _pure(ins.fn)
            and not any(bufs[r].root in written for r in reads)
            and not any(bufs[f].root in written or f in sink_set for f in ins.fresh)
        )
        if mergeable:
            try:
                key = (_key(ins.fn, {}) if isinstance(ins.fn, tuple) else ("fn", id(ins.fn)),
                       _key(ins.args, rename), _key(ins.kwargs, rename), _key(ins.err, {}))
            except _Unkeyable:
                key = None
            prev = seen.get(key) if key is not None else None
            if prev is not None:
                prev_refs = []
                _collect(prev.out, prev_refs)
                if len(prev_refs) == len(refs):
                    for a, b in zip(refs, prev_refs):
                        rename[a] = b
                    continue
            if key is not None:
                seen[key] = ins
        out.append(ins)
    if rename:
        for b in bufs:  # views of a merged result are views of the earlier one
            b.root = rename.get(b.root, b.root)
    return out


def relu_mask_from_output(instrs, bufs):
    """``relu_bwd(x, g)`` becomes ``relu_bwd(relu(x), g)`` and ``greater(x, 0)`` beside
    ``maximum(x, 0)`` becomes ``greater(maximum(x, 0), 0)``: the same values (``relu(x) > 0``
    exactly when ``x > 0``, NaN included), but the pre-activation ``x`` is then no longer needed
    after the forward pass, so the bias add and the ReLU before it write one array instead of two."""
    written = _written_roots(instrs, bufs)
    relu_of = {}  # x -> relu(x), for x and results nothing writes in place
    out = []
    for ins in instrs:
        name = _relu_name(ins.fn)
        if name and not ins.host and not ins.writes and not ins.kwargs and isinstance(ins.out, Ref):
            x = _relu_input(name, ins.args)
            o = ins.out.i
            if x is not None and name in ("relu_fwd", "maximum") and bufs[x].root not in written \
                    and bufs[o].root not in written and _same(bufs[x].value, bufs[o].value):
                relu_of.setdefault(x, (name, o))
            elif x is not None and name in ("relu_bwd", "greater") and x in relu_of:
                fwd, h = relu_of[x]
                if (fwd, name) in (("relu_fwd", "relu_bwd"), ("maximum", "greater")):
                    args = tuple(Ref(h) if isinstance(a, Ref) and a.i == x else a for a in ins.args[:1]) + \
                        tuple(ins.args[1:])
                    ins = Instr(ins.fn, args, ins.kwargs, ins.out, ins.writes, ins.fresh, ins.plan, ins.host,
                                ins.err)
        out.append(ins)
    return out


def _relu_name(fn):
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    module = getattr(fn, "__module__", None) or ""
    if module == "gpugrad.kernels" and name in ("relu_fwd", "relu_bwd"):
        return name
    name = name.removeprefix("cupy_")
    if name in ("maximum", "greater") and getattr(fn, "nout", None) == 1:
        return name
    return None


def _relu_input(name, args):
    """The buffer ``x`` of ``relu_fwd(x)``, ``relu_bwd(x, g)``, ``maximum(x, 0)`` or ``greater(x, 0)``."""
    if name == "relu_fwd":
        return args[0].i if len(args) == 1 and isinstance(args[0], Ref) else None
    if len(args) != 2 or not isinstance(args[0], Ref):
        return None
    if name == "relu_bwd":
        return args[0].i
    b = args[1]
    if type(b) in (int, float) and b == 0:  # a Python zero (weak: the array's dtype stays)
        return args[0].i
    return None


def _same(a, b) -> bool:
    return hasattr(a, "shape") and hasattr(b, "shape") and a.shape == b.shape and a.dtype == b.dtype \
        and isinstance(a, (np.ndarray,)) == isinstance(b, (np.ndarray,))


def pick_rows(instrs, bufs):
    """On NumPy arrays, ``take_along_axis(a, idx, axis=-1)`` and ``put_along_axis(a, idx, v, axis=-1)``
    with ``a`` of shape (rows, n) and ``idx`` of shape (rows, 1) (a label per row: a cross-entropy's
    pick) become ``a[r, idx]`` and ``a[r, idx] = v`` with ``r`` the column of row numbers: the same
    elements, read or written, by one indexing call (``take_along_axis`` builds that index in
    Python at every call, a few µs)."""
    rows: dict = {}
    out = []
    for ins in instrs:
        name = getattr(ins.fn, "__name__", None)
        if name in ("take_along_axis", "put_along_axis") and getattr(ins.fn, "__module__", "").startswith("numpy") \
                and ins.kwargs == {"axis": -1} and not ins.host:
            r = _row_index(ins.args, bufs, rows)
            if r is not None and name == "take_along_axis" and len(ins.args) == 2:
                ins = Instr(("getitem",), (ins.args[0], (r, ins.args[1])), {}, ins.out, ins.writes, ins.fresh,
                            False, False, ins.err)
            elif r is not None and name == "put_along_axis" and len(ins.args) == 3 and ins.out is None:
                ins = Instr(("setitem",), (ins.args[0], (r, ins.args[1]), ins.args[2]), {}, None, ins.writes,
                            ins.fresh, False, False, ins.err)
        out.append(ins)
    return out


def _row_index(args, bufs, rows):
    """The (rows, 1) column of row numbers for ``a`` and ``idx`` of the shapes above, else None."""
    if len(args) < 2 or not all(isinstance(a, Ref) for a in args):
        return None
    a, idx = bufs[args[0].i].value, bufs[args[1].i].value
    if type(a) is not np.ndarray or type(idx) is not np.ndarray or a.ndim != 2 or idx.shape != (a.shape[0], 1) \
            or idx.dtype.kind not in "iu":
        return None
    n = a.shape[0]
    if n not in rows:
        rows[n] = np.arange(n)[:, None]
    return rows[n]
