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
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .fusion import Group
from .render_c import render

# No -ffast-math: it would change NaN/inf semantics and, linked, set flush-to-zero process-wide.
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared", "-std=c99"]
NP_DTYPE = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64), "bool": np.dtype(np.bool_)}


def enabled() -> bool:
    return os.environ.get("GPUGRAD_FUSION", "1") != "0" and compiler() is not None


@functools.cache
def compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return shutil.which(cc)
    return None


def cache_dir() -> Path:
    root = os.environ.get("GPUGRAD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gpugrad")
    return Path(root) / "fusion"


@functools.cache
def _machine() -> str:
    """What the cache key knows of the compiler and the CPU (``-march=native`` depends on it)."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    cpu += line
                if line.startswith("flags"):
                    break
    except OSError:
        cpu += platform.processor()
    try:
        version = subprocess.run([compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return cpu + version


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
    key = hashlib.sha256("\0".join([src, *FLAGS, *libs, _machine()]).encode()).hexdigest()[:32]
    out = cache_dir() / f"{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        c = Path(tmp) / "k.c"
        c.write_text(src)
        so = Path(tmp) / "k.so"
        r = subprocess.run([compiler(), *FLAGS, str(c), "-o", str(so), *libs], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"C compile of a fused group failed:\n{r.stderr[-2000:]}")
        os.replace(so, out)  # atomic: another process may be building the same library
    return out


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


class FusedKernel:
    """Calls one compiled group: fresh output arrays, inputs made contiguous where they are not."""

    def __init__(self, fn, group: Group):
        self.fn = fn
        self.group = group
        self.n_in = len(group.inputs)
        self.outs = [(group.shape, NP_DTYPE[d]) for d in group.out_dtypes()]
        self.in_dtypes = [NP_DTYPE[i.dtype] for i in group.inputs]
        self.table = (ctypes.c_void_p * (self.n_in + len(self.outs)))()
        self.single = len(self.outs) == 1

    def __repr__(self):
        return f"<fused group of {len(self.group.ops)} ops over {self.group.shape}>"

    def __call__(self, *arrays):
        table = self.table
        keep = []
        for k, a in enumerate(arrays):
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                a = np.ascontiguousarray(a, dtype=self.in_dtypes[k])
                keep.append(a)
            table[k] = a.ctypes.data
        outs = [np.empty(s, d) for s, d in self.outs]
        for q, o in enumerate(outs):
            table[self.n_in + q] = o.ctypes.data
        self.fn(table)
        return outs[0] if self.single else tuple(outs)
