"""A compiled step on CuPy arrays, captured once as a CUDA graph (used by :mod:`gpugrad.jit`).

The capture runs the program's replay under CuPy stream capture. Every array it reads or writes
has a fixed address for the graph's life: each Variable's array is a buffer the graph updates in
place, and everything allocated during the capture is kept (a keep-alive allocator), so no address
the graph writes is ever handed to anyone else. A call is then: the host-side value checks on the
new inputs, the copies of any Variable assigned since, one graph launch, and copies of the outputs
(so that a later launch never overwrites what an earlier call returned).

The inputs: the first graph reads buffers of its own, made before the capture, into which each
call copies its input arrays. A step called again and again on the same device arrays (a batch
kept on the device, refilled in place or not) would copy them at every call, as many bytes as the
step itself may move; so when a call passes the very arrays of the call before (the same objects,
alive in between: a weak reference tells), a graph is captured against those arrays themselves
and kept, with them, in a small LRU keyed by their addresses and strides. A later call whose
arrays sit at a kept key launches that graph with no copy: it reads whatever the arrays hold at
the launch, so writes into them between calls are seen. The graph holds a reference to each array
it was captured against, so none of them is freed (and its memory handed out again) while a graph
may read it; an evicted graph lets them go. Arrays made afresh at every call (a new batch each
step) keep taking the copy: they never arrive twice.

Host numbers a step computes at each call (an optimizer's learning rate, step count and bias
corrections) are device scalars (:class:`gpugrad.jit.program.DeviceScalars`): the host part runs
before each launch and one copy hands its numbers to the graph. Random draws on CUDA are such
numbers too (the key and counter of :mod:`gpugrad.philox`), so a captured step draws afresh at each
launch. A step whose host code makes whole arrays at each call (``backend.host_array``) replays op
by op instead: a captured copy of them would repeat the same values.
"""

from __future__ import annotations

import sys
import weakref
from collections import OrderedDict

from .. import backend
from ..tensor import Tensor
from .program import accumulate_grad


class GraphRunner:
    """The graphs of one program: the state they share (Variables' fixed buffers, device scalars,
    host-side checks, ``.grad`` buffers) and the captures, one reading copies of its inputs and up
    to :data:`MAX_POINTER_GRAPHS` reading the caller's own arrays."""

    def __init__(self, prog, arrays):
        cp = backend.cupy()
        self.cp = cp
        self.prog = prog
        self.prechecks = []
        scalars = prog.device_scalars
        if scalars is not None and scalars.why_not:
            raise RuntimeError(scalars.why_not)
        self.scalars = scalars if scalars is not None and scalars.host_instrs else None
        arg_pos = {b: k for k, b in enumerate(prog.arg_bufs)}
        for i, ins in enumerate(prog.instrs):
            if not ins.host or (self.scalars is not None and i in self.scalars.host_instrs):
                continue
            reads = ins.reads()
            if ins.out is not None or not all(r in arg_pos or prog.const_bufs.get(r) is not None for r in reads):
                raise RuntimeError(
                    "the step runs a value check on an intermediate at each call, which a CUDA graph "
                    "would skip"
                )
            self.prechecks.append((ins, arg_pos))
        seen = {}
        for v, _ in prog.state["var_in"]:
            seen[id(v)] = v
        for v, _, _ in prog.state["var_out"]:
            seen[id(v)] = v
        if any(isinstance(o, tuple) for o, *_ in prog.state["grad_in"] + prog.state["grad_out"]):
            raise RuntimeError("the step reads or sets .grad of its Tensor arguments")
        self.vars = list(seen.values())
        self.fixed = [v.data.copy() for v in self.vars]
        for v, f in zip(self.vars, self.fixed):
            v.data = f
        self.fixed_ids = {id(f) for f in self.fixed}
        # .grad: a grad the step reads is copied into a fixed buffer before each launch; a grad it
        # sets is the buffer the graph writes, copied out after each launch (a new Tensor each call,
        # as backward() makes)
        self.grad_in = [(o, o.grad.data.copy()) for o, _ in prog.state["grad_in"]]
        self.copying = _Capture(self, [a.copy() for a in arrays], held=False)
        self.by_pointer: OrderedDict = OrderedDict()  # input key -> _Capture over the caller's arrays
        self.last = None  # (key, weak references) of the arrays of the last call that copied
        self._base_refs()

    def _base_refs(self):
        """What sys.getrefcount says of each fixed buffer when only we and its Variable hold it
        (measured after each capture: the same reference pattern as in run())."""
        self.base_refs = []
        for i in range(len(self.fixed)):
            f = self.fixed[i]
            self.base_refs.append(sys.getrefcount(f))  # ours, the Variable's, the local, the argument
            f = None

    def run(self, arrays):
        prog = self.prog
        prog.check_state()  # what the captured code's own checks would ask
        for ins, pos in self.prechecks:
            args = [arrays[pos[a.i]] if hasattr(a, "i") and a.i in pos else _const(prog, a) for a in ins.args]
            ins.fn(*args)
        for i in range(len(self.fixed)):
            v = self.vars[i]
            f = self.fixed[i]
            if v.data is f:
                if sys.getrefcount(f) > self.base_refs[i]:  # someone holds the graph's buffer
                    return prog.build(prog.raw(*arrays))
            else:  # the Variable holds another array now: nobody but us may hold the buffer
                if sys.getrefcount(f) > self.base_refs[i] - 1:
                    return prog.build(prog.raw(*arrays))
                f[...] = v.data  # assigned since the last call
                v.data = f
        cap = self._pick(arrays)
        env = self.scalars.stage() if self.scalars is not None else None
        if not cap.held:
            for buf, a in zip(cap.inputs, arrays):
                buf[...] = a
        for o, g in self.grad_in:
            g[...] = o.grad.data
        cap.graph.launch(self.cp.cuda.get_current_stream())
        for v in self.vars:
            if v._is_var:
                v._version += 1
        for o, g, mode in cap.grad_out:
            if g is None:
                o.grad = None
            elif mode == "acc":
                o.grad = accumulate_grad(o.grad, g.copy())
            else:
                o.grad = Tensor._make(g.copy())
        outs = [o.copy() if o is not None else env[b] for o, b in zip(cap.outs, prog.outputs)]
        return prog.build(outs)

    def _pick(self, arrays):
        """The capture this call launches: one over these very arrays if kept (or if they are the
        last call's arrays again, captured now), else the one that copies its inputs."""
        key = _key(arrays)
        if key is None:
            return self.copying
        cap = self.by_pointer.get(key)
        if cap is not None:
            self.by_pointer.move_to_end(key)
            return cap
        last = self.last
        if last is not None and last[0] == key and all(r() is a for r, a in zip(last[1], arrays)):
            self.last = None
            try:
                cap = _Capture(self, list(arrays), held=True)
            except Exception:  # noqa: BLE001 - the copying graph works as before
                return self.copying
            self.by_pointer[key] = cap
            while len(self.by_pointer) > MAX_POINTER_GRAPHS:
                self.by_pointer.popitem(last=False)  # its arrays and memory go with it
            self._base_refs()  # a capture may hold a fixed buffer (an output that is a Variable's)
            return cap
        self.last = (key, [weakref.ref(a) for a in arrays])
        return self.copying


#: graphs captured against callers' own input arrays, per program (each keeps its arrays alive and
#: its intermediates allocated)
MAX_POINTER_GRAPHS = 2


def _key(arrays):
    """The address and strides of each input (a graph's kernels are captured with both), or None
    when one is not a device array that a weak reference can follow."""
    key = []
    for a in arrays:
        if not backend.is_cupy_array(a):
            return None
        key.append((a.data.ptr, a.strides))
    return tuple(key)


class _Capture:
    """One captured graph of the program over ``inputs``: buffers of the runner's own (``held``
    False, a call copies into them) or the caller's arrays (``held`` True, referenced here for the
    graph's life)."""

    def __init__(self, runner, inputs, held):
        cp = runner.cp
        prog = runner.prog
        self.inputs = inputs
        self.held = held
        raw = runner.scalars.raw if runner.scalars is not None else prog.raw
        pool = cp.get_default_memory_pool()
        self.kept = []

        def keep_alive(size):
            mem = pool.malloc(size)
            self.kept.append(mem)
            return mem

        stream = cp.cuda.Stream(non_blocking=True)
        cp.cuda.get_current_stream().synchronize()
        prev = cp.cuda.get_allocator()
        cp.cuda.set_allocator(keep_alive)
        glb = raw.__globals__
        glb["_checks"] = False  # value checks run on the host before each launch instead
        # An update may write into its Variable's array when nothing else holds it (the replay asks
        # sys.getrefcount). The fixed buffers are made by the runner and held by nobody else (run()
        # checks that before every launch), so the captured update writes into them: no copy back.
        fixed_ids = runner.fixed_ids
        glb["_rc"] = lambda a: 0 if id(a) in fixed_ids else sys.getrefcount(a) - 1
        # During the capture the owners of .grad see the fixed buffers, and a grad that backward()
        # adds to is taken as absent (the addition runs after the launch).
        saved = {id(o): (o, o.grad) for o, *_ in prog.state["grad_in"] + prog.state["grad_out"]}
        for o, g in runner.grad_in:
            o.grad = Tensor._make(g)
        for o, _, mode in prog.state["grad_out"]:
            if mode == "acc":
                o.grad = None
        for v, f in zip(runner.vars, runner.fixed):
            v.data = f
        try:
            with stream:
                stream.begin_capture()
                try:
                    self.outs = raw(*inputs)
                    for v, f in zip(runner.vars, runner.fixed):
                        if v.data is not f:
                            f[...] = v.data  # the new value back into the Variable's fixed buffer
                    self.grad_out = [(o, None if b is None else o.grad.data, mode)
                                     for o, b, mode in prog.state["grad_out"]]
                finally:
                    graph = stream.end_capture()
        finally:
            glb["_checks"] = True
            glb["_rc"] = sys.getrefcount
            cp.cuda.set_allocator(prev)
            for o, g in saved.values():
                o.grad = g
            for v, f in zip(runner.vars, runner.fixed):
                v.data = f
        for v in runner.vars:
            if v._is_var:  # a Tensor (a PyTorch-style parameter) has no version counter
                v._version -= 1  # the capture ran the step's Python once without computing it
        self.graph = graph


def _const(prog, a):
    i = getattr(a, "i", None)
    return prog.const_bufs[i] if i is not None else a
