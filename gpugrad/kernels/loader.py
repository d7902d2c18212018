"""The kernels of ``kernels/*.cu`` as ``cupy.RawKernel``s on a GPU: each compile unit compiled by
NVRTC (through ``cupy.RawModule``) on first use, once per device, and memoized with its kernels."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import backend as _backend
from .sources import _KERNELS, COMPILE_OPTIONS, KERNEL_DIR, KernelCompileError, _check_module, compile_unit, unit_source

_modules: dict[tuple[str, int], Any] = {}
_kernels: dict[tuple[str, str, int], Any] = {}
_load_lock = threading.Lock()


def _cupy() -> Any:
    cp = _backend.cupy()
    if cp is None:
        raise RuntimeError("the CUDA kernels need CuPy, which is not installed (pip install gpugrad[cuda13])")
    return cp


def get_kernel(module: str, name: str) -> Any:
    """The ``cupy.RawKernel`` ``name`` of ``module`` on the current device.

    The module is compiled on first use (per device) and memoized, as are its kernels.
    """
    cp = _cupy()
    dev = cp.cuda.runtime.getDevice()
    key = (module, name, dev)
    kern = _kernels.get(key)
    if kern is not None:
        return kern
    _check_module(module)
    if name not in _KERNELS[module]:
        raise KeyError(f"module {module!r} has no kernel {name!r}")
    unit = compile_unit(module, name)
    where = f"module {module!r} ({KERNEL_DIR / (module + '.cu')})"
    kern = _kernels.get((unit, name, dev))
    if kern is None:
        kern = _load(cp, (unit, name, dev), lambda: unit_source(module, unit), COMPILE_OPTIONS, where)
        _kernels[key] = kern
    return kern


def _load(cp: Any, key: tuple[str, str, int], code: Callable[[], str], options: tuple[str, ...], where: str) -> Any:
    """Compile module ``key[0]`` (its source from ``code()``) on device ``key[2]`` once, and
    memoize its kernel ``key[1]``."""
    module, name, dev = key
    with _load_lock:
        kern = _kernels.get(key)
        if kern is not None:
            return kern
        mod = _modules.get((module, dev))
        if mod is None:
            mod = cp.RawModule(code=code(), options=options)
            _modules[(module, dev)] = mod
        try:
            kern = mod.get_function(name)
        except cp.cuda.compiler.CompileException as exc:
            _modules.pop((module, dev), None)
            log = str(exc)
            raise KernelCompileError(
                f"kernel {name!r} of {where} failed to compile with NVRTC:\n{log}",
                module=module,
                kernel=name,
                log=log,
            ) from exc
        _kernels[key] = kern
        return kern
