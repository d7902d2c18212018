"""Simulated ``cupy.RawModule`` and ``cupy.RawKernel``: real CUDA sources, run on the host.

A module is compiled twice, once each way, on first use: by NVRTC for sm_90 (as CuPy would on an
H100: a source NVRTC rejects raises CuPy's ``CompileException`` with NVRTC's log, and ptxas reports
each kernel's static shared memory and registers), and by the host C++ compiler against
``host/cuda_host.h``, whose library runs the kernels on NumPy memory (a device address here is the
host address of the array's data). Both results are cached on disk by content.

A launch is checked as the driver checks it, raising ``CUDADriverError(CUDA_ERROR_INVALID_VALUE)``:
block and grid dimensions (at most 1024 threads per block), static + dynamic shared memory (48 KB
unless ``max_dynamic_shared_size_bytes`` was raised, which may go to 227 KB less the static part),
and the arguments against the kernel's parameters (count, byte sizes, arrays for pointers and
values for the rest: the driver itself would pass them on unchecked). Out-of-bounds accesses are
not checked.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import threading

import numpy as np

from . import _device as D
from ._array import ndarray
from .cupy.cuda.compiler import CompileException
from .host import build as B
from .host.library import HostLibrary

#: options CuPy adds to every NVRTC compile by itself
CUPY_IMPLICIT_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
_ARCH = "sm_90"

_ENTRY_RE = re.compile(r"Compiling entry function '(\w+)'")
_SMEM_RE = re.compile(r"(\d+) bytes smem")
_REGS_RE = re.compile(r"Used (\d+) registers")


def _nvrtc():
    try:
        from ...kernels import _nvrtc_bindings  # noqa: PLC0415

        return _nvrtc_bindings.load()
    except Exception:
        return None


_resources_lock = threading.Lock()


def nvrtc_resources(code: str, options: tuple[str, ...]) -> dict[str, dict[str, int]] | None:
    """Each ``extern "C"`` kernel's ``{"smem": static shared bytes, "regs": registers}`` from
    compiling ``code`` with NVRTC for sm_90 (cached on disk), or None where NVRTC cannot be loaded.
    Raises ``CompileException`` with NVRTC's log when the source does not compile."""
    opts = [o for o in (*options, *CUPY_IMPLICIT_OPTIONS) if not o.startswith(("-arch", "--gpu-architecture"))]
    opts += [f"-arch={_ARCH}", "-Xptxas=-v"]
    key = hashlib.sha256(("\0".join([code, *opts])).encode()).hexdigest()[:24]
    path = B.cache_dir() / f"nvrtc-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    nvrtc = _nvrtc()
    if nvrtc is None:
        return None
    with _resources_lock:
        prog = nvrtc.createProgram(code, "kernel.cu", [], [])
        try:
            try:
                nvrtc.compileProgram(prog, opts)
            except Exception as exc:
                log = nvrtc.getProgramLog(prog)
                raise CompileException(f"{exc}\n{log}", code, "kernel.cu", tuple(options)) from None
            log = nvrtc.getProgramLog(prog)
        finally:
            nvrtc.destroyProgram(prog)
    found: dict[str, dict[str, int]] = {}
    current = None
    for line in log.splitlines():
        m = _ENTRY_RE.search(line)
        if m:
            current = m.group(1)
            found[current] = {"smem": 0, "regs": 0}
            continue
        m = _REGS_RE.search(line)
        if m and current is not None:
            smem = _SMEM_RE.search(line)
            found[current] = {"smem": int(smem.group(1)) if smem else 0, "regs": int(m.group(1))}
            current = None
    found = {k: v for k, v in found.items() if not k.startswith("_Z")}  # C++ names need name_expressions
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found))
    os.replace(tmp, path)
    return found


def _include_dirs(options: tuple[str, ...]) -> list[str]:
    dirs = []
    for i, o in enumerate(options):
        if o.startswith("-I") and len(o) > 2:
            dirs.append(o[2:])
        elif o in ("-I", "--include-path") and i + 1 < len(options):
            dirs.append(options[i + 1])
        elif o.startswith("--include-path="):
            dirs.append(o.split("=", 1)[1])
    return dirs


class RawModule:
    """``RawModule(code=..., options=())``: compiled on first ``get_function`` (or ``compile()``)."""

    def __init__(
        self,
        code: str | None = None,
        *,
        path: str | None = None,
        options: tuple[str, ...] = (),
        backend: str = "nvrtc",
        translate_cucomplex: bool = False,
        enable_cooperative_groups: bool = False,
        name_expressions=None,
        jitify: bool = False,
    ) -> None:
        if (code is None) == (path is None):
            raise TypeError("One (and only one) of path and code must be provided.")
        if path is not None:
            with open(path, encoding="utf-8") as f:
                code = f.read()
        if name_expressions:
            raise NotImplementedError('the simulated device compiles extern "C" kernels only (no name_expressions)')
        self.code = code
        self.options = tuple(options)
        self.backend = backend
        self._lib: HostLibrary | None = None
        self._resources: dict[str, dict[str, int]] | None = None
        self._names: list[str] = []
        self._lock = threading.Lock()

    def compile(self, log_stream=None) -> None:
        self._load()

    def _load(self, want: str | None = None) -> HostLibrary:
        with self._lock:
            if self._lib is not None and (want is None or want in self._names or self._resources is not None):
                return self._lib
            D.refuse_in_capture("a module load")
            if self._resources is None and self._lib is None:
                self._resources = nvrtc_resources(self.code, self.options)
            if self._resources is not None:
                names = list(self._resources)
            else:  # no NVRTC here: the extern "C" kernels written out, and the one asked for
                names = list(dict.fromkeys([*B.extern_kernels(self.code), *self._names, *([want] if want else [])]))
            try:
                path = B.build_source(self.code, names, tag="module", include_dirs=_include_dirs(self.options))
            except B.HostCompileError as exc:
                if self._resources is None and want is not None:
                    raise D.driver_error(D.CU_NOT_FOUND, want) from exc
                raise CompileException(exc.log or str(exc), self.code, "kernel.cu", self.options, "host") from None
            self._names = names
            self._lib = HostLibrary(path)
            return self._lib

    def get_function(self, name: str) -> RawKernel:
        lib = self._load(name)
        params = lib.params(name)
        if params is None:
            raise D.driver_error(D.CU_NOT_FOUND, name)
        res = (self._resources or {}).get(name, {"smem": 0, "regs": 0})
        return RawKernel._bound(self, name, lib, params, res)


class RawKernel:
    """``RawKernel(code, name, options=())``: ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, code: str, name: str, options: tuple[str, ...] = (), backend: str = "nvrtc", **kwargs) -> None:
        self.code = code
        self.name = name
        self.options = tuple(options)
        self._module = RawModule(code=code, options=options, backend=backend)
        self._lib: HostLibrary | None = None
        self._max_dyn: int | None = None

    @classmethod
    def _bound(cls, module: RawModule, name: str, lib: HostLibrary, params, res) -> RawKernel:
        k = cls.__new__(cls)
        k.code, k.name, k.options = module.code, name, module.options
        k._module = module
        k._set(lib, params, res)
        return k

    def _set(self, lib: HostLibrary, params, res) -> None:
        self._lib = lib
        self._sizes, self._kinds = params
        self._static = int(res["smem"])
        self._regs = int(res["regs"])
        self._max_dyn = D.SMEM_PER_BLOCK - self._static

    def _ensure(self) -> None:
        if self._lib is None:
            kern = self._module.get_function(self.name)
            self._set(kern._lib, (kern._sizes, kern._kinds), {"smem": kern._static, "regs": kern._regs})

    # ---------------------------------------------------------------- attributes

    @property
    def shared_size_bytes(self) -> int:
        self._ensure()
        return self._static

    @property
    def num_regs(self) -> int:
        self._ensure()
        return self._regs

    @property
    def max_threads_per_block(self) -> int:
        return D.MAX_THREADS_PER_BLOCK

    @property
    def max_dynamic_shared_size_bytes(self) -> int:
        self._ensure()
        return self._max_dyn

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, value: int) -> None:
        self._ensure()
        value = int(value)
        if value < 0 or value + self._static > D.SMEM_PER_BLOCK_OPTIN:
            raise D.driver_error(
                D.CU_INVALID_VALUE,
                f"max_dynamic_shared_size_bytes {value} + static {self._static} > {D.SMEM_PER_BLOCK_OPTIN}",
            )
        self._max_dyn = value

    @property
    def attributes(self) -> dict[str, int]:
        self._ensure()
        return {
            "max_threads_per_block": D.MAX_THREADS_PER_BLOCK,
            "shared_size_bytes": self._static,
            "const_size_bytes": 0,
            "local_size_bytes": 0,
            "num_regs": self._regs,
            "ptx_version": 90,
            "binary_version": 90,
            "max_dynamic_shared_size_bytes": self._max_dyn,
        }

    # ---------------------------------------------------------------- launch

    def _invalid(self, why: str) -> D.CUDADriverError:
        detail = f"{self.name}: {why}"
        return D.driver_error(D.CU_INVALID_VALUE, detail)

    def __call__(self, grid, block, args, *, shared_mem: int = 0, enable_cooperative_groups: bool = False) -> None:
        self._ensure()
        g = _dims(grid, "grid")
        b = _dims(block, "block")
        threads = b[0] * b[1] * b[2]
        if min(g) < 1 or min(b) < 1:
            raise self._invalid(f"grid {g} and block {b} must be positive")
        if threads > D.MAX_THREADS_PER_BLOCK or any(x > m for x, m in zip(b, D.MAX_BLOCK_DIM)):
            raise self._invalid(
                f"block {b} has {threads} threads (at most {D.MAX_THREADS_PER_BLOCK}, dims {D.MAX_BLOCK_DIM})"
            )
        if any(x > m for x, m in zip(g, D.MAX_GRID_DIM)):
            raise self._invalid(f"grid {g} exceeds {D.MAX_GRID_DIM}")
        smem = int(shared_mem)
        if smem < 0 or smem > self._max_dyn:
            raise self._invalid(
                f"{smem} B of dynamic shared memory beside {self._static} B static exceeds the kernel's limit of "
                f"{self._max_dyn} B dynamic (raise max_dynamic_shared_size_bytes; at most "
                f"{D.SMEM_PER_BLOCK_OPTIN} B in all)"
            )
        if not isinstance(args, (tuple, list)):
            raise TypeError("args must be a tuple")
        if len(args) != len(self._sizes):
            raise self._invalid(f"takes {len(self._sizes)} arguments, got {len(args)}")
        values = []
        read = written = 0
        keep = []
        for i, (a, size, kind) in enumerate(zip(args, self._sizes, self._kinds)):
            if isinstance(a, ndarray):
                if kind == "v":
                    raise self._invalid(f"argument {i} is an array; the kernel takes a {size}-byte value there")
                if a._dev != D.state.device:
                    raise self._invalid(f"argument {i} is on device {a._dev}, the launch on device {D.state.device}")
                values.append(ctypes.c_void_p(D.address(a._a) if a.size else 0))
                keep.append(a)
                if kind == "r":
                    read += a.nbytes
                else:
                    written += a.nbytes
                continue
            if isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__"):
                raise TypeError(f"Unsupported type {type(a)}")
            if kind != "v":
                raise self._invalid(f"argument {i} is a {type(a).__name__}; the kernel takes a pointer there")
            v = _scalar(a)
            if v.dtype.itemsize != size:
                raise self._invalid(
                    f"argument {i} is a {v.dtype.itemsize}-byte {v.dtype.name}; the kernel takes {size} bytes"
                )
            values.append(np.ctypeslib.as_ctypes_type(v.dtype)(v.item()))
        lib, name = self._lib, self.name

        def go(keep: list = keep) -> None:  # keep: the arrays stay alive while a graph holds the launch
            err = lib.launch(name, g, b, smem, values)
            if err:
                raise D.driver_error(D.CU_LAUNCH_FAILED, f"{name}: {err}")

        D.run(name, go, read, written)


def _dims(x, what: str) -> tuple[int, int, int]:
    t = (int(x),) if np.isscalar(x) else tuple(int(v) for v in x)
    if not 1 <= len(t) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions")
    return (*t, 1, 1)[:3]


def _scalar(a) -> np.generic:
    if isinstance(a, np.generic):
        return a
    if isinstance(a, bool):
        return np.bool_(a)
    if isinstance(a, int):
        return np.int64(a)
    if isinstance(a, float):
        return np.float64(a)
    if isinstance(a, complex):
        return np.complex128(a)
    raise TypeError(f"Unsupported type {type(a)}")
