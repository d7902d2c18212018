"""Users' CUDA sources (``gg.cuda.RawKernel``, ``gg.cuda.compile_check``): compiled by the same
loader as gpugrad's own kernels on a GPU, or by NVRTC alone without one."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .loader import _cupy, _kernels, _load
from .nvrtc import _nvrtc_compile_source
from .sources import COMPILE_OPTIONS, KernelCompileError


def get_source_kernel(src: str, name: str, options: tuple[str, ...] = ()) -> Any:
    """The ``cupy.RawKernel`` ``name`` of a user's CUDA source ``src`` on the current device:
    compiled by NVRTC on first use per device and memoized beside the kernels of ``kernels/``."""
    cp = _cupy()
    module = "source-" + hashlib.sha1(repr((src, tuple(options))).encode()).hexdigest()[:16]
    key = (module, name, cp.cuda.runtime.getDevice())
    kern = _kernels.get(key)
    if kern is not None:
        return kern
    return _load(cp, key, lambda: src, (*COMPILE_OPTIONS, *options), "a user's CUDA source")


def compile_source(src: str, name: str, arch: str = "compute_80", options: tuple[str, ...] = ()) -> str:
    """Compile a user's CUDA source with NVRTC, without a GPU, and return the PTX; raises
    :class:`KernelCompileError` with NVRTC's log when it does not compile or defines no kernel
    ``name`` (declare it ``extern "C" __global__``)."""
    ptx = _nvrtc_compile_source(src, f"{name}.cu", arch, module=name, extra=tuple(options)).decode()
    if not re.search(rf"\.entry\s+{re.escape(name)}\s*\(", ptx):
        raise KernelCompileError(
            f'the CUDA source compiles but defines no kernel {name!r}; declare it extern "C" __global__ '
            f"void {name}(...) (C++ names are mangled)",
            module=name,
            kernel=name,
        )
    return ptx
