"""Fused groups on CUDA: the kernel from :mod:`gpugrad.jit.render_cuda`, compiled once per source by
NVRTC through CuPy (``RawModule``, cached by CuPy on disk too) and launched over a grid-stride loop.

A kernel is loaded when the program is built, never during a CUDA-graph capture (loading a module
while capturing fails), and one module object serves every program that makes the same source.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import backend
from .fusion import Group
from .render_cuda import REDUCE_PARTS, REDUCE_ROWS, render

THREADS = 256
MAX_BLOCKS = 132 * 16  # an H100's SMs times the resident blocks a grid-stride loop needs
_modules: dict = {}


def load(group: Group, device: str):
    """The compiled group as a callable of its inputs, or None (then its calls run one by one)."""
    src, name = render(group)
    key = (src, device)
    fn = _modules.get(key)
    if fn is None:
        cp = backend.cupy()
        try:
            with cp.cuda.Device(int(device.split(":")[1])):
                module = cp.RawModule(code=src)
                fn = module.get_function(name)
                fn.attributes  # noqa: B018 - compiles and loads now, not inside a later capture
                if group.reduce_op is not None:  # and the kernel adding the partial sums
                    fn = (fn, module.get_function(name + "_sum"))
                    fn[1].attributes  # noqa: B018
        except Exception as e:  # noqa: BLE001 - NVRTC missing or refusing: the calls run one by one
            warnings.warn(f"gg.jit: fusion disabled for a CUDA group ({type(e).__name__}: {e})", RuntimeWarning,
                          stacklevel=2)
            return None
        _modules[key] = fn
    return FusedCudaKernel(fn, group)


class FusedCudaKernel:
    """One launch of a compiled group: fresh outputs, contiguous inputs, host numbers in device memory."""

    host_dtype = np.dtype(np.float64)  # its host numbers are read as doubles (in a captured graph too)

    def __init__(self, fn, group: Group):
        self.fn = fn
        self.group = group
        self.n = group.outer * group.inner
        self.grid = (max(1, min(MAX_BLOCKS, -(-self.n // THREADS))),)
        self.host = {k for k, i in enumerate(group.inputs) if i.kind == "host"}
        self.outs = [(q, np.dtype({"f32": np.float32, "f64": np.float64, "bool": np.bool_}[group.ops[j].dtype]))
                     for q, j in enumerate(group.outputs) if q not in group.inplace]
        self.order = group.output_blocks()
        self.single = len(self.order) == 1
        self.red = None  # a trailing sum over rows: (its shape, dtype), computed in two launches
        if group.reduce_op is not None:
            dt = {"f32": np.float32, "f64": np.float64}[group.ops[group.reduce_op].dtype]
            self.red = (tuple(group.shape[1:]), np.dtype(dt))
        if group.plannable:
            self.nout = 1  # one result: the program may hand it out= (a buffer, a Variable's array)

    def __repr__(self):
        return f"<fused CUDA group of {len(self.group.ops)} ops over {self.group.shape}>"

    def __call__(self, *arrays, out=None):
        cp = backend.cupy()
        args = []
        for k, a in enumerate(arrays):
            if k in self.host and not backend.is_cupy_array(a):
                a = cp.asarray(np.array([a], np.float64))  # a plain replay: this call's number
            elif not a.flags.c_contiguous:
                if k in self.group.inplace.values():
                    raise RuntimeError("gg.jit: a fused CUDA group writes into a non-contiguous array")
                a = cp.ascontiguousarray(a)
            args.append(a)
        fresh = [out] if out is not None else [cp.empty(self.group.shape, dt) for _, dt in self.outs]
        if self.red is not None:
            return self._reduce(cp, args, fresh, arrays)
        self.fn(self.grid, (THREADS,), (*args, *fresh, np.int64(self.n)))
        it = iter(fresh)
        out = [arrays[p] if b < 0 else next(it) for b, p in self.order]
        return out[0] if self.single else tuple(out)

    def _reduce(self, cp, args, fresh, arrays):
        outer, inner = self.group.outer, self.group.inner
        cols = min(inner, THREADS)  # a block's threads: lanes of cols, each lane one partial row
        lanes = max(1, min(THREADS // cols, outer // REDUCE_ROWS))
        blocks = max(1, min(REDUCE_PARTS, outer // (REDUCE_ROWS * lanes)))
        parts = blocks * lanes
        part = cp.empty((parts, inner), self.red[1])
        red = cp.empty(*self.red)
        main, total = self.fn
        main((blocks,), (THREADS,), (*args, *fresh, part, np.int64(parts), np.int64(lanes), np.int64(cols)))
        total((max(1, min(MAX_BLOCKS, -(-self.group.inner // THREADS))),), (THREADS,), (part, red, np.int64(parts)))
        it = iter(fresh)
        out = [arrays[p] if b < 0 else next(it) for b, p in self.order]
        return tuple(out) + (red,) if out else red
