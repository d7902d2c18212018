"""A recorded step as a program: simplified (constants folded, dead calls dropped), its buffers
planned by liveness, and turned into one straight-line Python function of array calls."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import backend
from ..graph import Node
from ..tensor import Tensor
from . import cpu as _cpu
from . import gpu as _gpu
from . import passes as _passes
from . import trace as _trace
from .fusion import find_groups
from .trace import Instr, Ref, Trace
from .trees import _build, _TreeNode

_NODES: dict = {}


def output_tensor(data, kind) -> Tensor:
    """A returned Tensor; for kind ``("G", why)`` one that requires grad, as eager code's would, with
    a graph node that raises ``why`` when differentiated (a compiled step keeps no graph)."""
    t = Tensor._make(data)
    if kind != "T":
        node = _NODES.get(kind[1])
        if node is None:
            node = _NODES[kind[1]] = Node((), None, None, True, "CompiledStep")
            node.freed = kind[1]
        t._rg = True
        t._node = node
    return t


class Stale(Exception):
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
        instrs = _passes.cse(_passes.pick_rows(_fold(t.instrs, bufs), bufs), bufs, sinks)
        self.instrs = _dce(_passes.relu_mask_from_output(instrs, bufs), bufs, sinks)
        on_gpu = any(backend.is_cupy_array(b.value) for b in bufs)
        if _cpu.fusion_on() and (on_gpu or _cpu.compiler() is not None):
            self.instrs = _fuse(self.instrs, bufs, sinks, on_gpu)
        self.needs_leaves = any(isinstance(o, tuple) for o, *_ in state["grad_in"] + state["grad_out"])
        self.storage, self.donate = _plan(self.instrs, bufs, sinks, state, set(self.outputs))
        self.source, self.replay, self.raw = _codegen(self)
        self.cuda = cuda_graph and any(backend.is_cupy_array(b.value) for b in bufs if b.kind == "arg")
        self.device_scalars = DeviceScalars(self, bufs) if self.cuda else None
        if self.device_scalars is not None and self.device_scalars.host_instrs:
            self.device_scalars.raw = _codegen(self, self.device_scalars)[2]
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
            elif k[0] == "G":
                leaves.append(output_tensor(next(it), k))
            else:
                leaves.append(k[1])
        return _build(self.out_spec, iter(leaves))

    def check_state(self) -> None:
        """Raise :class:`Stale` when a Variable (or Tensor) the program reads or writes no longer
        fits it: the replay's own first lines, for a launch of the captured graph, which runs none."""
        for v, key, grad_none in self.checks:
            if key is not None:
                d = v.data
                if d.shape != key[0] or d.dtype != key[1] or (len(key) > 2 and backend.device_of(d) != key[2]):
                    raise Stale
            if grad_none is not None and (v.grad is None) is not grad_none:
                raise Stale

    def _run_cuda(self, arrays):
        g = self._graph
        if g is None:
            self.check_state()  # a state this program does not fit is no reason to give up the graph
            from .cuda_graph import GraphRunner

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


class DeviceScalars:
    """The host numbers a CUDA step reads (an optimizer's learning rate, its bias corrections), as
    device scalars, so that the step can be one captured graph: before each launch the host part
    (:attr:`host_instrs`) runs in Python, its numbers go into a staging array and one copy puts
    them on the device, where the captured calls read them. Each number gets a slot per dtype it
    is read in, converted as NumPy converts a Python number (``float32(lr)`` next to float32
    arrays). ``why_not`` says why a step cannot be captured (arrays made by host code, numbers read where
    no array gives their dtype)."""

    def __init__(self, prog, bufs):
        self.host_instrs = {}  # instruction index -> the host call that makes a number
        self.substituted = {}  # instruction index -> the same call reading device scalars
        self.slots = []  # (host buffer, dtype, slot)
        self.host_bufs = set()
        self.why_not = None
        self.raw = None
        for i, ins in enumerate(prog.instrs):
            if ins.host and ins.out is not None:
                outs = []
                _trace._collect(ins.out, outs)
                if any(bufs[o].kind != "host" for o in outs):
                    self.why_not = "the step makes arrays with host code at each call (backend.host_array)"
                    return
                self.host_instrs[i] = ins
                self.host_bufs.update(outs)
        if not self.host_instrs:
            return
        by_dtype: dict = {}
        for i, ins in enumerate(prog.instrs):
            if i in self.host_instrs:
                continue
            reads = [r for r in ins.reads() if r in self.host_bufs]
            if not reads:
                continue
            if ins.host:
                self.why_not = "a value check reads a number computed on the host"
                return
            arrays = [bufs[r].value for r in ins.reads() if r not in self.host_bufs
                      and backend.is_cupy_array(bufs[r].value)]
            if not arrays:
                self.why_not = "a host number is read where no device array gives its dtype"
                return
            # a fused kernel reads its host numbers as doubles; an array call in NumPy's promotion
            host_dt = getattr(ins.fn, "host_dtype", None)  # a call that reads its host numbers as doubles
            dt = host_dt if host_dt is not None else np.result_type(*[a.dtype for a in arrays])
            sub = {}
            for r in reads:
                key = (r, dt)
                if key not in by_dtype:
                    by_dtype[key] = len(self.slots)
                    self.slots.append((r, dt, sum(1 for s in self.slots if s[1] == dt)))
                sub[r] = key
            self.substituted[i] = (ins, sub)
        cp = backend.cupy()
        dev = next(backend.device_of(b.value) for b in bufs if b.kind == "arg" and backend.is_cupy_array(b.value))
        # one block of bytes holds every dtype's numbers (8-byte aligned), so one copy moves them all
        regions, size = {}, 0
        for dt in dict.fromkeys(dt for _, dt, _ in self.slots):
            count = sum(1 for s in self.slots if s[1] == dt)
            regions[dt] = (size, count)
            size += -(-count * dt.itemsize // 8) * 8
        with cp.cuda.Device(int(dev.split(":")[1])):
            self.device = cp.zeros(size, np.uint8)
        self.staging = np.zeros(size, np.uint8)
        self.host_views = {dt: self.staging[o:o + c * dt.itemsize].view(dt) for dt, (o, c) in regions.items()}
        device_views = {dt: self.device[o:o + c * dt.itemsize].view(dt) for dt, (o, c) in regions.items()}
        views = {(r, dt): device_views[dt][k] for r, dt, k in self.slots}  # 0-d views: fixed addresses
        for i, (ins, sub) in list(self.substituted.items()):
            self.substituted[i] = Instr(ins.fn, _swap(ins.args, sub, views), _swap(ins.kwargs, sub, views),
                                        ins.out, ins.writes, ins.fresh, ins.plan, ins.host, ins.err)

    def stage(self):
        """Run the host part; put its numbers on the device (one copy). Returns them."""
        env = {}
        for ins in self.host_instrs.values():
            args = [env[a.i] if isinstance(a, Ref) else a for a in ins.args]
            res = args[0][args[1]] if isinstance(ins.fn, tuple) else ins.fn(*args, **ins.kwargs)
            env[ins.out.i] = res
        for r, dt, k in self.slots:
            self.host_views[dt][k] = env[r]
        self.device.set(self.staging)
        return env


def _swap(x, sub, views):
    if isinstance(x, Ref):
        return views[sub[x.i]] if x.i in sub else x
    if type(x) in (list, tuple):
        return type(x)(_swap(e, sub, views) for e in x)
    if type(x) is dict:
        return {k: _swap(v, sub, views) for k, v in x.items()}
    return x


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
_FUSED = (_cpu.FusedKernel, _gpu.FusedCudaKernel)


def _fuse(instrs, bufs, sinks, on_gpu=False):
    """Each fused group's calls become one call of its compiled loop, placed where its last call was;
    the calls in between that read what the group makes follow it (see :func:`find_groups`)."""
    groups = find_groups(instrs, bufs, sinks, on_gpu)
    if not groups:
        return instrs
    drop, place = set(), {}
    for members, group, inputs, outputs, deferred in groups:
        for b in inputs:  # a constant read by a loop is laid out once, not at every call
            v = bufs[b].value
            if bufs[b].kind == "const" and hasattr(v, "flags") and not v.flags.c_contiguous:
                bufs[b].value = backend.get_array_module(v).ascontiguousarray(v)
        if on_gpu:
            dev = next(backend.device_of(bufs[b].value) for b in inputs if backend.is_cupy_array(bufs[b].value))
            kernel = _gpu.load(group, dev)
        else:
            kernel = _cpu.load(group)
        if kernel is None:
            continue
        out = Ref(outputs[0]) if len(outputs) == 1 else tuple(Ref(o) for o in outputs)
        inplace = [outputs[q] for q in group.inplace]
        last = members[-1]
        moved = [d for d in deferred if d < last]  # the later ones already run after the group
        drop.update(members)
        drop.update(moved)
        fresh = [o for o in outputs if o not in inplace]
        fused = Instr(kernel, tuple(Ref(b) for b in inputs), {}, out, inplace, fresh, plan=group.plannable)
        place[last] = [fused] + [instrs[d] for d in moved]
    out = []
    for i, ins in enumerate(instrs):
        if i in place:
            out.extend(place[i])
        elif i not in drop:
            out.append(ins)
    return out


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
                    ins.plan and getattr(ins.fn, "nout", None) == 1 and bufs[o].root == o  # a ufunc, a fused loop
                    and _same_layout(bufs[o].value, bufs[vi].value) and last.get(bufs[vi].root, -1) <= i
                    and vi in ins.reads()
                    # a fused loop reads each element once, just before writing it: only where no
                    # other input is a view of the Variable's array (a ufunc copies such overlaps)
                    and (not isinstance(ins.fn, _FUSED) or all(
                        r == vi or bufs[r].root != bufs[vi].root for r in ins.reads()))
                )
                if ok:
                    views = sum(
                        1 for j in range(i) for f in instrs[j].fresh if bufs[f].root == vi and f != vi
                    )
                    # references at the check: the Variable, the local name, the pending positional
                    # argument of this same call, and getrefcount's own (views add theirs)
                    donate[i] = (vi, 4 + views)
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


def _codegen(prog: Program, device_scalars=None):
    """The replay as Python source, compiled: one line per array call. With ``device_scalars``
    (:class:`DeviceScalars`), the variant captured as a CUDA graph: the calls that compute host
    numbers are left out (they run on the host before each launch) and the array calls read those
    numbers from device memory instead."""
    bufs = prog.t.bufs
    names = _Names()
    for b in bufs:
        if b.kind == "const":
            names.globals[f"b{b.i}"] = b.value
    names.globals["_rc"] = sys.getrefcount
    names.globals["_T"] = Tensor._make
    names.globals["Stale"] = Stale
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
        conds = []
        if key is not None:  # a Variable's array (a Tensor's never changes)
            conds.append(f"{vn}.data.shape != {key[0]!r} or {vn}.data.dtype != {names.obj(key[1])}")
            if len(key) > 2:
                names.globals["_dev"] = backend.device_of
                conds.append(f"_dev({vn}.data) != {key[2]!r}")
        if grad_none is not None:
            conds.append(f"({vn}.grad is None) is not {grad_none!r}")
        if conds:
            body.append(f"if {' or '.join(conds)}: raise Stale")
    for v, b in prog.state["var_in"]:
        body.append(f"b{b} = {owner(v)}.data")
    for v, b in prog.state["grad_in"]:
        body.append(f"b{b} = {owner(v)}.grad.data")
    for i, ins in enumerate(prog.instrs):
        if device_scalars is not None:
            if i in device_scalars.host_instrs:
                continue
            ins = device_scalars.substituted.get(i, ins)
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
        if getattr(v, "_is_var", False):
            body.append(f"{vn}._version += 1")
    for v, o, mode in prog.state["grad_out"]:
        vn = owner(v)
        if o is None:
            body.append(f"{vn}.grad = None")
        elif mode == "acc":  # backward() into a .grad: set it, or add to the one found there
            names.globals["_acc"] = accumulate_grad
            body.append(f"{vn}.grad = _acc({vn}.grad, b{o})")
        else:
            body.append(f"{vn}.grad = _T(b{o})")
    host_out = device_scalars.host_bufs if device_scalars is not None else ()
    raw = "(" + "".join("None, " if o in host_out else f"b{o}, " for o in prog.outputs) + ")"
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


def accumulate_grad(g, new):
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
        elif k[0] == "G":
            names.globals["_TG"] = output_tensor
            leaves.append(f"_TG(b{next(it)}, {names.obj(k)})")
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

