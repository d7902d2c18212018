"""Fused groups on the CPU: C from :mod:`gpugrad.jit.render_c`, compiled once by the system compiler
(``-O3 -march=native``) into a shared library cached on disk by a hash of the source, the flags,
the compiler and the CPU, and called through ctypes.

``GPUGRAD_FUSION=0`` turns fusion off; so does a machine without a C compiler (or one whose compile
fails): the compiled step then runs its calls one by one, with the same results.
``GPUGRAD_CACHE_DIR`` moves the cache (default ``~/.cache/gpugrad``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np

from ..native.build import build, compiler  # noqa: F401  (compiler: re-exported)
from .fusion import Group
from .render_c import render

# No -ffast-math: it would change NaN/inf semantics and, linked, set flush-to-zero process-wide.
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared", "-std=c99"]
NP_DTYPE = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64), "bool": np.dtype(np.bool_)}


def fusion_on() -> bool:
    """``GPUGRAD_FUSION`` is not 0 (on CUDA, NVRTC compiles the groups; on the CPU, the C compiler)."""
    return os.environ.get("GPUGRAD_FUSION", "1") != "0"


@functools.cache
def _libmvec() -> bool:
    """Whether glibc's vector math library links here (then loops with math calls vectorize)."""
    src = '__attribute__((simd("notinbranch"))) float tanhf(float);\n' \
          "void f(float *x, long n) {\n#pragma omp simd\nfor (long i = 0; i < n; i++) x[i] = tanhf(x[i]);\n}\n"
    try:
        _build(src, ["-lmvec", "-lm"])
        return True
    except RuntimeError:
        return False


def _build(src: str, libs: list[str]) -> Path:
    return build(src, FLAGS, libs, "fusion", what="a fused group")


_loaded: dict = {}


def load(group: Group):
    """The compiled group as a Python callable of its input arrays, or None if it cannot be built."""
    mvec = _libmvec()
    src = render(group, simd_decls=mvec)
    fn = _loaded.get(src)
    if fn is None:
        try:
            path = _build(src, ["-lmvec", "-lm"] if mvec else ["-lm"])
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            warnings.warn(f"gg.jit: fusion disabled for a group ({e}); its calls run one by one",
                          RuntimeWarning, stacklevel=2)
            return None
        fn = ctypes.CDLL(str(path)).gg_fused
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = None
        _loaded[src] = fn
    return FusedKernel(fn, group)


def _address(a) -> int:
    try:  # the quickest way to an array's address from Python (a writable buffer)
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):  # read-only, or a NumPy scalar
        return a.__array_interface__["data"][0]


class FusedKernel:
    """Calls one compiled group: inputs made contiguous where they are not, the outputs written into
    one fresh block per dtype and handed out as views of it."""

    def __init__(self, fn, group: Group):
        self.fn = fn
        self.group = group
        self.n_in = len(group.inputs)
        self.in_dtypes = [NP_DTYPE[i.dtype] for i in group.inputs]
        counts = {}
        for d in group.out_dtypes():
            counts[d] = counts.get(d, 0) + 1
        self.blocks = [((counts[d],) + tuple(group.shape), NP_DTYPE[d]) for d in group.block_dtypes()]
        self.order = group.output_blocks()
        # a trailing sum over rows: its result comes after the others (see Group.reduce_op)
        self.red = None
        if group.reduce_op is not None:
            self.red = (tuple(group.shape[1:]), NP_DTYPE[group.ops[group.reduce_op].dtype])
        self.table = (ctypes.c_void_p * (self.n_in + len(self.blocks) + (self.red is not None)))()
        self.single = len(self.order) == 1
        self.host = {k: np.empty(1) for k, i in enumerate(group.inputs) if i.kind == "host"}
        self.written = set(group.inplace.values())
        if group.plannable:
            self.nout = 1  # one result: the program may hand it out= (a buffer, a Variable's array)

    def __repr__(self):
        return f"<fused group of {len(self.group.ops)} ops over {self.group.shape}>"

    def __call__(self, *arrays, out=None):
        table = self.table
        copies = {}
        for k, a in enumerate(arrays):
            if k in self.host:  # a number computed on the host for this call
                h = self.host[k]
                h[0] = a
                a = h
            elif type(a) is not np.ndarray or not a.flags.c_contiguous:
                a = copies[k] = np.ascontiguousarray(a, dtype=self.in_dtypes[k])
            table[k] = _address(a)
        if out is not None:  # a plannable group's one result, into a C-contiguous array given
            table[self.n_in] = _address(out)
            self.fn(table)
            return out
        views = []
        for q, (shape, dtype) in enumerate(self.blocks):
            block = np.empty(shape, dtype)
            table[self.n_in + q] = _address(block)
            views.append(list(block))
        if self.red is not None:
            red = np.empty(*self.red)
            table[self.n_in + len(self.blocks)] = _address(red)
        self.fn(table)
        for k in self.written & copies.keys():  # written into a contiguous copy: put it back
            arrays[k][...] = copies[k]
        out = [arrays[p] if b < 0 else views[b][p] for b, p in self.order]
        if self.red is not None:
            return tuple(out) + (red,) if out else red
        return out[0] if self.single else tuple(out)
