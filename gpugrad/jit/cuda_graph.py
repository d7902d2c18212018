"""A compiled step on CuPy arrays, captured once as a CUDA graph (used by :mod:`gpugrad.jit`).

The capture runs the program's replay under CuPy stream capture. Every array it reads or writes
has a fixed address for the graph's life: the inputs are copied into buffers made before the
capture, each Variable's array is a buffer the graph updates in place, and everything allocated
during the capture is kept (a keep-alive allocator), so no address the graph writes is ever handed
to anyone else. A call is then: the host-side value checks on the new inputs, the copies of the
inputs (and of any Variable assigned since), one graph launch, and copies of the outputs (so that
a later launch never overwrites what an earlier call returned).

Host numbers a step computes at each call (an optimizer's learning rate, step count and bias
corrections) are device scalars (:class:`gpugrad.jit.program.DeviceScalars`): the host part runs
before each launch and one copy hands its numbers to the graph. Random draws on CUDA are such
numbers too (the key and counter of :mod:`gpugrad.philox`), so a captured step draws afresh at each
launch. A step whose host code makes whole arrays at each call (``backend.host_array``) replays op
by op instead: a captured copy of them would repeat the same values.
"""

from __future__ import annotations

import sys

from .. import backend
from ..tensor import Tensor
from .program import accumulate_grad


class GraphRunner:
    def __init__(self, prog, arrays):
        cp = backend.cupy()
        self.prog = prog
        self.prechecks = []
        scalars = prog.device_scalars
        if scalars is not None and scalars.why_not:
            raise RuntimeError(scalars.why_not)
        self.scalars = scalars if scalars is not None and scalars.host_instrs else None
        raw = self.scalars.raw if self.scalars is not None else prog.raw
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
        self.inputs = [a.copy() for a in arrays]
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
        # sys.getrefcount). The fixed buffers are made here and held by nobody else (run() checks
        # that before every launch), so the captured update writes into them: no copy back.
        fixed_ids = {id(f) for f in self.fixed}
        glb["_rc"] = lambda a: 0 if id(a) in fixed_ids else sys.getrefcount(a) - 1
        # .grad: a grad the step reads is copied into a fixed buffer before each launch; a grad it
        # sets is the buffer the graph writes, copied out after each launch (a new Tensor each call,
        # as backward() makes). During the capture the owners see those buffers, and a grad that
        # backward() adds to is taken as absent (the addition runs after the launch).
        saved = {id(o): (o, o.grad) for o, *_ in prog.state["grad_in"] + prog.state["grad_out"]}
        self.grad_in = [(o, o.grad.data.copy()) for o, _ in prog.state["grad_in"]]
        for o, g in self.grad_in:
            o.grad = Tensor._make(g)
        for o, _, mode in prog.state["grad_out"]:
            if mode == "acc":
                o.grad = None
        try:
            with stream:
                stream.begin_capture()
                try:
                    self.outs = raw(*self.inputs)
                    for v, f in zip(self.vars, self.fixed):
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
        for v, f in zip(self.vars, self.fixed):
            v.data = f
            if v._is_var:  # a Tensor (a PyTorch-style parameter) has no version counter
                v._version -= 1  # the capture ran the step's Python once without computing it
        self.graph = graph
        self.base_refs = []
        for i in range(len(self.fixed)):  # the same reference pattern as in run()
            f = self.fixed[i]
            self.base_refs.append(sys.getrefcount(f))  # ours, the Variable's, the local, the argument
            f = None
        self.cp = cp

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
        env = self.scalars.stage() if self.scalars is not None else None
        for buf, a in zip(self.inputs, arrays):
            buf[...] = a
        for o, g in self.grad_in:
            g[...] = o.grad.data
        self.graph.launch(self.cp.cuda.get_current_stream())
        for v in self.vars:
            if v._is_var:
                v._version += 1
        for o, g, mode in self.grad_out:
            if g is None:
                o.grad = None
            elif mode == "acc":
                o.grad = accumulate_grad(o.grad, g.copy())
            else:
                o.grad = Tensor._make(g.copy())
        outs = [o.copy() if o is not None else env[b] for o, b in zip(self.outs, prog.outputs)]
        return prog.build(outs)


def _const(prog, a):
    i = getattr(a, "i", None)
    return prog.const_bufs[i] if i is not None else a
