"""The CUDA kernels of ``kernels/*.cu``: loading and array-level launch wrappers.

Loading. Each module (``activations``, ``softmax``, ``losses``) is one CUDA C source with
``kernels/common.cuh`` inlined in place of its ``#include``; the same text goes to
``cupy.RawModule`` on a GPU (compiled by NVRTC on first use, once per device and compile unit --
one operation's layouts, see :func:`compile_unit` -- cached on disk by CuPy) and to the low-level
NVRTC binding in :func:`nvrtc_compile`, which needs no GPU and is what the CI compile test runs.
Importing this module neither imports CuPy nor compiles anything.

Launching. The array-level functions below take CuPy arrays and return new CuPy arrays of the
input's float dtype (float32 or float64; float64 is computed in float64). Inputs are made
contiguous, secondary inputs (targets, upstream gradients) are cast to the main input's dtype, and
every function accepts ``out=`` (a contiguous array of the result's shape and dtype, or a tuple of
them for two results) that must not overlap the inputs. "Rows" are all leading axes flattened and
``C`` is the length of the last axis; per-row arguments (``g_row``, the ``saved`` values of the
cross-entropy forwards, ``labels``) have shape ``x.shape[:-1]`` (or any shape of that size, or one
that broadcasts to it). Row operations pick a layout per call (:func:`row_plan`): several rows per
warp, a row in registers or in shared memory, or a row split across blocks; each is its own kernel.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import re
import site
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from . import backend as _backend

__all__ = [
    "KERNEL_DIR",
    "COMPILE_OPTIONS",
    "MODULES",
    "KernelCompileError",
    "NvrtcUnavailable",
    "source",
    "kernel_names",
    "get_kernel",
    "get_source_kernel",
    "compile_source",
    "nvrtc_compile",
    "load_nvrtc",
    "sigmoid_fwd",
    "sigmoid_bwd",
    "sigmoid_bwd_bwd",
    "tanh_fwd",
    "tanh_bwd",
    "tanh_bwd_bwd",
    "relu_fwd",
    "relu_bwd",
    "softmax_fwd",
    "log_softmax_fwd",
    "softmax_bwd",
    "log_softmax_bwd",
    "mse_fwd",
    "mse_bwd",
    "bce_fwd",
    "bce_bwd",
    "bce_logits_fwd",
    "bce_logits_bwd",
    "softmax_ce_fwd",
    "softmax_ce_bwd",
    "softmax_ce_sparse_fwd",
    "softmax_ce_sparse_bwd",
]


def _kernel_dir() -> Path:
    installed = Path(__file__).parent / "_cuda"  # a wheel force-includes kernels/ here
    return installed if installed.is_dir() else Path(__file__).parent.parent / "kernels"


KERNEL_DIR: Path = _kernel_dir()

#: NVRTC options of every build. CuPy adds the architecture on a GPU (and, by itself, ``-ftz=true``
#: and ``--device-as-default-execution-space``, which :func:`nvrtc_compile` adds too).
COMPILE_OPTIONS: tuple[str, ...] = ("-std=c++17",)

_CUPY_IMPLICIT_OPTIONS: tuple[str, ...] = ("-ftz=true", "--device-as-default-execution-space")

MODULES: tuple[str, ...] = ("activations", "softmax", "losses")

# Launch geometry; must match the #defines of kernels/common.cuh (checked by the compile test).
EW_THREADS = 256
WARP_ROWS_THREADS = 128
BLOCK_ROWS_MAX_THREADS = 512
SPLIT_THREADS = 256
#: rows up to this many columns get one warp each (the row lives in registers), longer ones a block
WARP_MAX_COLS = 1024
#: rows up to this many columns share a warp (several rows per warp)
SMALL_MAX_COLS = 32
_GRID_BLOCKS_PER_SM = 32
_MAX_ROW_GRID = 1 << 16
#: dynamic shared memory a block may use without the opt-in attribute
_DEFAULT_SMEM = 48 * 1024
#: kept free of the opt-in limit for the kernels' static shared memory (block_reduce's partials)
_STATIC_SMEM_RESERVE = 2048

_DTYPE_SUFFIX = {"f": "f32", "d": "f64"}


def _both(*bases: str) -> tuple[str, ...]:
    return tuple(f"{b}_{s}" for b in bases for s in ("f32", "f64"))


#: row layouts of the softmax family (one row on chip per pass) and of the row reductions (losses)
ELEMENT_LAYOUTS: tuple[str, ...] = (
    "small",
    "regs64",
    "regs128",
    "regs256",
    "regs512",
    "regs1024",
    "smem",
    "part",
    "fin",
)
REDUCE_LAYOUTS: tuple[str, ...] = ("small", "warp", "block", "part", "fin")

_KERNELS: dict[str, tuple[str, ...]] = {
    "activations": _both(
        "sigmoid_fwd",
        "sigmoid_bwd",
        "sigmoid_bwd_bwd",
        "tanh_fwd",
        "tanh_bwd",
        "tanh_bwd_bwd",
        "relu_fwd",
        "relu_bwd",
    ),
    "softmax": _both(
        *(
            f"{op}_{layout}"
            for op in ("softmax_fwd", "log_softmax_fwd", "softmax_bwd", "log_softmax_bwd")
            for layout in ELEMENT_LAYOUTS
        )
    ),
    "losses": _both(
        *(
            f"{op}_{layout}"
            for op in ("mse_fwd", "bce_logits_fwd", "bce_fwd", "softmax_ce_fwd", "softmax_ce_sparse_fwd")
            for layout in REDUCE_LAYOUTS
        ),
        "mse_bwd",
        "bce_bwd",
        "bce_logits_bwd",
        "softmax_ce_bwd",
        "softmax_ce_sparse_bwd",
    ),
}


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel source; the message names the module/kernel and carries the log."""

    def __init__(self, message: str, *, module: str = "", kernel: str = "", log: str = "") -> None:
        super().__init__(message)
        self.module = module
        self.kernel = kernel
        self.log = log


class NvrtcUnavailable(RuntimeError):
    """CuPy's NVRTC binding or the libnvrtc shared library cannot be loaded."""


# ----------------------------------------------------------------------------------------- sources

_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.MULTILINE)


def _check_module(module: str) -> None:
    if module not in _KERNELS:
        raise ValueError(f"unknown kernel module {module!r}; expected one of {MODULES}")


@cache
def source(module: str) -> str:
    """The CUDA source of ``kernels/<module>.cu`` with its local ``#include "..."`` lines inlined."""
    _check_module(module)
    text = (KERNEL_DIR / f"{module}.cu").read_text(encoding="utf-8")

    def inline(m: re.Match[str]) -> str:
        header = (KERNEL_DIR / m.group(1)).read_text(encoding="utf-8")
        return f"// ---- begin {m.group(1)}\n{header}\n// ---- end {m.group(1)}"

    return _INCLUDE_RE.sub(inline, text)


def kernel_names(module: str) -> list[str]:
    """Every ``extern "C"`` entry of a module (one per operation, layout and dtype)."""
    _check_module(module)
    return list(_KERNELS[module])


# ------------------------------------------------------------------------------ NVRTC without a GPU

_preloaded: list[ctypes.CDLL] = []
_nvrtc_lock = threading.Lock()


def _nvrtc_library_candidates() -> list[Path]:
    """libnvrtc files in the nvidia-cuda-nvrtc wheel layouts and CUDA toolkit paths, best first."""
    roots: list[str] = []
    for entry in [*sys.path, *_site_dirs()]:
        if entry and entry not in roots and os.path.isdir(entry):
            roots.append(entry)
    patterns = (
        "nvidia/cu13/lib/libnvrtc.so*",
        "nvidia/cuda_nvrtc/lib/libnvrtc.so*",
        "nvidia/cu12/lib/libnvrtc.so*",
        "nvidia/cu13/bin/nvrtc64_*.dll",
        "nvidia/cuda_nvrtc/bin/nvrtc64_*.dll",
    )
    found: list[Path] = []
    for root in roots:
        for pattern in patterns:
            found.extend(Path(p) for p in sorted(glob.glob(os.path.join(root, pattern))))
    for var in ("CUDA_PATH", "CUDA_HOME"):
        home = os.environ.get(var)
        if home:
            found.extend(Path(p) for p in sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*"))))
    # the main library, not its builtins companion
    return [p for p in found if "builtins" not in p.name and "alt" not in p.name]


def _site_dirs() -> list[str]:
    dirs: list[str] = []
    try:
        dirs.extend(site.getsitepackages())
    except AttributeError:  # some virtualenv flavours
        pass
    try:
        dirs.append(site.getusersitepackages())
    except AttributeError:
        pass
    return dirs


def _preload(lib: Path) -> None:
    mode = getattr(ctypes, "RTLD_GLOBAL", 0)
    # libnvrtc loads libnvrtc-builtins from its own directory at compile time; load it first so
    # that it is found whatever the loader's search path.
    for builtins in sorted(lib.parent.glob("libnvrtc-builtins.so*")):
        _preloaded.append(ctypes.CDLL(str(builtins), mode=mode))
    _preloaded.append(ctypes.CDLL(str(lib), mode=mode))


def load_nvrtc() -> Any:
    """``cupy.cuda.nvrtc`` with libnvrtc loaded; works without a GPU.

    CuPy finds libnvrtc itself in the usual layouts (the nvidia-cuda-nvrtc wheel, a CUDA toolkit).
    Where it does not, the library is looked for in the wheel directories of ``sys.path`` and in
    ``$CUDA_PATH``/``$CUDA_HOME`` and loaded globally first, which CuPy then picks up. Without
    CuPy, NVIDIA's own bindings (``cuda-bindings``) stand in, behind the same calls. Raises
    :class:`NvrtcUnavailable` when none works.
    """
    try:
        from cupy.cuda import nvrtc  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken CUDA install
        try:
            from . import _nvrtc_bindings  # noqa: PLC0415

            return _nvrtc_bindings.load()
        except Exception as exc2:
            raise NvrtcUnavailable(
                f"cupy.cuda.nvrtc cannot be imported ({exc}) and neither can cuda.bindings.nvrtc ({exc2}); "
                "install cuda-bindings and nvidia-cuda-nvrtc (the test extra does), or CuPy"
            ) from exc
    with _nvrtc_lock:
        try:
            nvrtc.getVersion()
            return nvrtc
        except Exception as exc:
            first = exc
        tried: list[str] = []
        for lib in _nvrtc_library_candidates():
            tried.append(str(lib))
            try:
                _preload(lib)
                nvrtc.getVersion()
                return nvrtc
            except Exception:
                continue
        raise NvrtcUnavailable(
            f"libnvrtc cannot be loaded ({first}); tried {tried or 'no candidate files'}; "
            "install the nvidia-cuda-nvrtc wheel or a CUDA toolkit"
        )


def _nvrtc_compile_source(
    src: str, filename: str, arch: str, *, module: str = "", cubin: bool = False, extra: tuple[str, ...] = ()
) -> bytes:
    """Compile CUDA source text with NVRTC (no GPU needed): PTX for ``compute_XX``, or, with
    ``cubin`` and an ``sm_XX`` arch, a cubin (which also runs ptxas, as CuPy does on a GPU)."""
    nvrtc = load_nvrtc()
    options = [*COMPILE_OPTIONS, *_CUPY_IMPLICIT_OPTIONS, *extra, f"-arch={arch}"]
    prog = nvrtc.createProgram(src, filename, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError as exc:
            log = nvrtc.getProgramLog(prog)
            raise KernelCompileError(
                f"NVRTC failed to compile {filename} (module {module or filename!r}, {arch}): {exc}\n{log}",
                module=module,
                log=log,
            ) from exc
        return nvrtc.getCUBIN(prog) if cubin else nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)


def nvrtc_compile(module: str, arch: str) -> bytes:
    """Compile ``source(module)`` to PTX for ``arch`` (e.g. ``'compute_90'``) with CuPy's low-level
    NVRTC binding; needs no GPU. Raises :class:`KernelCompileError` carrying NVRTC's log."""
    return _nvrtc_compile_source(source(module), f"{module}.cu", arch, module=module)


# ----------------------------------------------------------------------------- RawModules on a GPU

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


_ENTRY_RE = re.compile(r"^GG_[A-Z0-9_]+\((\w+),")
_UNIT_MODULES = ("softmax", "losses")


def compile_unit(module: str, name: str) -> str:
    """The unit NVRTC compiles for kernel ``name``: in the row modules, every layout of one
    operation and dtype (``'softmax:softmax_fwd_f32'``), so that a first call compiles a few
    kernels rather than the whole module; elsewhere, the module."""
    parts = name.rsplit("_", 2)
    if module in _UNIT_MODULES and len(parts) == 3 and parts[1] in (*ELEMENT_LAYOUTS, *REDUCE_LAYOUTS):
        return f"{module}:{parts[0]}_{parts[2]}"
    if module in _UNIT_MODULES:
        return f"{module}:{name}"
    return module


@cache
def unit_source(module: str, unit: str) -> str:
    """``source(module)`` keeping only the entries of compile unit ``unit``."""
    if unit == module:
        return source(module)
    keep = {n for n in _KERNELS[module] if compile_unit(module, n) == unit}
    lines = [line for line in source(module).splitlines() if (m := _ENTRY_RE.match(line)) is None or m.group(1) in keep]
    return "\n".join(lines) + "\n"


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


class Runtime:
    """Where the launch wrappers below run: the array module, kernel lookup and device limits.

    The default is CuPy on the current device. The host harness of the tests supplies one that
    runs the same kernels compiled for the CPU on NumPy arrays (see :func:`_use_runtime`).
    ``force_layout`` (tests only) makes every row operation use that layout where it applies.
    """

    force_layout: str | None = None

    def __init__(self, xp: Any, sm_count: int, smem_optin: int, l2_bytes: int) -> None:
        self.xp = xp
        self.sm_count = sm_count
        self.smem_optin = smem_optin
        self.l2_bytes = l2_bytes

    def kernel(self, module: str, name: str) -> Any:
        return get_kernel(module, name)

    def allow_smem(self, kern: Any, nbytes: int) -> None:
        """Lets ``kern`` use ``nbytes`` of dynamic shared memory: where it and the kernel's static
        shared memory pass the default 48 KB (a limit on both together), the opt-in attribute
        (cudaFuncAttributeMaxDynamicSharedMemorySize) is raised, once, to what the device allows
        beside the static part."""
        static = int(getattr(kern, "shared_size_bytes", 0))
        if nbytes + static > _DEFAULT_SMEM and getattr(kern, "max_dynamic_shared_size_bytes", 0) < nbytes:
            kern.max_dynamic_shared_size_bytes = self.smem_optin - static


_runtimes: dict[int, Runtime] = {}
_runtime_override: list[Runtime] = []


def _rt() -> Runtime:
    if _runtime_override:
        return _runtime_override[-1]
    cp = _cupy()
    dev = cp.cuda.runtime.getDevice()
    rt = _runtimes.get(dev)
    if rt is None:
        attr = cp.cuda.runtime.deviceGetAttribute
        rtm = cp.cuda.runtime
        rt = Runtime(
            cp,
            sm_count=int(attr(rtm.cudaDevAttrMultiProcessorCount, dev)),
            smem_optin=int(attr(rtm.cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)),
            l2_bytes=int(attr(rtm.cudaDevAttrL2CacheSize, dev)),
        )
        _runtimes[dev] = rt
    return rt


class _use_runtime:  # noqa: N801 - a context manager used like a function
    """``with _use_runtime(rt):`` runs the launch wrappers on ``rt`` (the tests' host harness)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def __enter__(self) -> Runtime:
        _runtime_override.append(self.rt)
        return self.rt

    def __exit__(self, *exc: object) -> None:
        _runtime_override.pop()


# ------------------------------------------------------------------------------ launch geometry


def ew_grid(n: int, itemsize: int, sm_count: int) -> int:
    """Blocks for an elementwise kernel over n elements: one 16-byte vector per thread, capped."""
    per_block = EW_THREADS * max(1, 16 // itemsize)
    return max(1, min(-(-n // per_block), sm_count * _GRID_BLOCKS_PER_SM))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class RowPlan:
    """How a row operation runs: ``layout`` (a kernel name part), its grid/block/dynamic shared
    memory, and for split rows the chunk length, chunks per row and rows per launch slice."""

    __slots__ = ("layout", "grid", "block", "smem", "chunk", "nch", "slice_rows", "fin_grid", "fin_block")

    def __init__(
        self,
        layout: str,
        grid: int,
        block: int,
        smem: int = 0,
        chunk: int = 0,
        nch: int = 0,
        slice_rows: int = 0,
        fin_grid: int = 0,
        fin_block: int = 0,
    ) -> None:
        self.layout, self.grid, self.block, self.smem = layout, grid, block, smem
        self.chunk, self.nch, self.slice_rows = chunk, nch, slice_rows
        self.fin_grid, self.fin_block = fin_grid, fin_block

    def __repr__(self) -> str:
        return "RowPlan(" + ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__) + ")"


def _cap(n: int) -> int:
    return max(1, min(n, _MAX_ROW_GRID))


def _block_threads(cols: int) -> int:
    return max(128, min(BLOCK_ROWS_MAX_THREADS, _pow2_at_least(-(-cols // 16))))


def _split_plan(rows: int, cols: int, row_bytes: int, sm_count: int, l2_bytes: int, elementwise: bool) -> RowPlan:
    # enough chunks for two blocks per multiprocessor, chunks of 1K..16K columns
    want = max(1, -(-2 * sm_count // max(rows, 1)))
    chunk = min(16384, max(1024, -(-cols // want)))
    chunk = -(-chunk // 256) * 256
    nch = -(-cols // chunk)
    if elementwise:
        # rows per Part/Fin pair: the slice's inputs fit in half of L2, so Fin re-reads them from L2
        slice_rows = max(1, min(rows, (l2_bytes // 2) // max(row_bytes, 1)))
        grid = _cap(slice_rows * nch)
        return RowPlan(
            "split",
            grid,
            SPLIT_THREADS,
            chunk=chunk,
            nch=nch,
            slice_rows=slice_rows,
            fin_grid=grid,
            fin_block=SPLIT_THREADS,
        )
    per_block = SPLIT_THREADS // 32
    return RowPlan(
        "split",
        _cap(rows * nch),
        SPLIT_THREADS,
        chunk=chunk,
        nch=nch,
        slice_rows=rows,
        fin_grid=_cap(-(-rows // per_block)),
        fin_block=SPLIT_THREADS,
    )


def _layout_fits(layout: str, cols: int, elementwise: bool, fits_smem: bool) -> bool:
    if layout == "small":
        return cols <= SMALL_MAX_COLS
    if layout.startswith("regs"):
        return elementwise and cols <= int(layout[4:])
    if layout == "smem":
        return elementwise and fits_smem
    if layout in ("warp", "block"):
        return not elementwise
    return layout == "split"


def row_plan(
    rows: int,
    cols: int,
    itemsize: int,
    *,
    elementwise: bool,
    nin: int = 1,
    sm_count: int = 132,
    smem_bytes: int = 227 * 1024,
    l2_bytes: int = 50 << 20,
    force: str | None = None,
) -> RowPlan:
    """The layout and launch configuration of a row operation over [rows, cols].

    ``elementwise``: the softmax family, whose output has the input's shape: the row stays on chip
    between the reduction and the write (``small``, ``regs<N>``, ``smem``), or is split across
    blocks (``split``: Part + Fin). Otherwise a row reduction (the losses): ``small``, ``warp``,
    ``block`` or ``split``. ``nin`` inputs per element are kept on chip; ``smem_bytes`` is what a
    block may use. ``force`` picks a layout (tests), falling back where it cannot hold the row.
    """
    warps = WARP_ROWS_THREADS // 32
    row_bytes = nin * cols * itemsize
    fits_smem = row_bytes <= smem_bytes - _STATIC_SMEM_RESERVE
    if force is not None and _layout_fits(force, cols, elementwise, fits_smem):
        layout = force
    elif cols <= SMALL_MAX_COLS:
        layout = "small"
    elif cols <= WARP_MAX_COLS:
        layout = f"regs{max(64, _pow2_at_least(cols))}" if elementwise else "warp"
    elif rows < sm_count:
        layout = "split"
    elif elementwise:
        layout = "smem" if fits_smem else "split"
    else:
        layout = "block"
    if layout == "small":
        per_block = warps * (32 // _pow2_at_least(cols))
        return RowPlan("small", _cap(-(-rows // per_block)), WARP_ROWS_THREADS)
    if layout.startswith("regs") or layout == "warp":
        return RowPlan(layout, _cap(-(-rows // warps)), WARP_ROWS_THREADS)
    if layout == "smem":
        return RowPlan("smem", _cap(min(rows, sm_count * _GRID_BLOCKS_PER_SM)), _block_threads(cols), smem=row_bytes)
    if layout == "block":
        return RowPlan("block", _cap(rows), _block_threads(cols))
    return _split_plan(rows, cols, row_bytes, sm_count, l2_bytes, elementwise)


def row_launch(rows: int, cols: int) -> tuple[str, int, int]:
    """(layout, grid, block) of a row reduction (a loss forward) on a device of 132 multiprocessors."""
    plan = row_plan(rows, cols, 4, elementwise=False)
    return plan.layout, plan.grid, plan.block


# ------------------------------------------------------------------------------ argument handling


def _suffix(dtype: Any) -> str:
    s = _DTYPE_SUFFIX.get(np.dtype(dtype).char)
    if s is None:
        raise TypeError(f"the CUDA kernels support float32 and float64 arrays, not {np.dtype(dtype).name}")
    return s


def _main(cp: Any, a: Any, name: str) -> Any:
    """The main float input: a contiguous CuPy array of float32/float64."""
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{name} must be a cupy.ndarray, got {type(a).__name__}")
    _suffix(a.dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _like(cp: Any, a: Any, ref: Any, name: str) -> Any:
    """A secondary input of the same shape as ``ref``, cast to its dtype and made contiguous."""
    a = cp.asarray(a)
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {ref.shape}")
    if a.dtype != ref.dtype:
        a = a.astype(ref.dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _per_row(cp: Any, a: Any, lead: tuple[int, ...], dtype: Any, name: str) -> Any:
    """A per-row argument as a contiguous array of shape ``lead`` and dtype ``dtype``."""
    a = cp.asarray(a)
    if a.shape != lead:
        if a.size == int(np.prod(lead, dtype=np.int64)) and a.ndim > 0:
            a = a.reshape(lead)
        else:
            try:
                a = cp.broadcast_to(a, lead)
            except ValueError:
                raise ValueError(f"{name} has shape {a.shape}, expected {lead} (one value per row)") from None
    if a.dtype != dtype:
        a = a.astype(dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _labels(cp: Any, labels: Any, lead: tuple[int, ...]) -> Any:
    labels = cp.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, not {labels.dtype.name}")
    return _per_row(cp, labels, lead, np.int64, "labels")


def _out(cp: Any, out: Any, shape: tuple[int, ...], dtype: Any, name: str = "out") -> Any:
    if out is None:
        return cp.empty(shape, dtype)
    if not isinstance(out, cp.ndarray):
        raise TypeError(f"{name} must be a cupy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"{name} must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}, got "
            f"{out.dtype.name} {out.shape}{'' if out.flags.c_contiguous else ' (not contiguous)'}"
        )
    return out


def _outs(cp: Any, out: Any, shapes: tuple[tuple[int, ...], ...], dtype: Any) -> tuple[Any, ...]:
    if out is None:
        return tuple(cp.empty(s, dtype) for s in shapes)
    if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
        raise TypeError(f"out must be a tuple of {len(shapes)} arrays")
    return tuple(_out(cp, o, s, dtype, f"out[{i}]") for i, (o, s) in enumerate(zip(out, shapes, strict=True)))


def _ptr(a: Any) -> int:
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data


def _no_overlap(out: Any, *inputs: Any) -> None:
    for a in inputs:
        if out is a or (out.size and a.size and _ptr(out) == _ptr(a)):
            raise ValueError("out must not share memory with an input")


def _on_input_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Runs ``fn`` with the device of its first CuPy array argument current, so that outputs are
    allocated and kernels launched there (a no-op when it already is)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cp = _backend.cupy()
        if cp is not None:
            for a in args:
                if isinstance(a, cp.ndarray):
                    dev = a.device
                    if dev.id != cp.cuda.runtime.getDevice():
                        with dev:
                            return fn(*args, **kwargs)
                    break
        return fn(*args, **kwargs)

    return wrapper


def _rows_cols(x: Any, name: str) -> tuple[tuple[int, ...], int, int]:
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the class/feature axis is the last)")
    lead = tuple(x.shape[:-1])
    cols = int(x.shape[-1])
    rows = int(np.prod(lead, dtype=np.int64))
    return lead, rows, cols


def _i64(v: int) -> np.int64:
    return np.int64(v)


# ------------------------------------------------------------------------------ activations


def _ew(module: str, base: str, inputs: list[Any], nout: int, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    rt = _rt()
    cp = rt.xp
    ref = inputs[0]
    shapes = (ref.shape,) * nout
    outs = (_out(cp, out, ref.shape, ref.dtype),) if nout == 1 else _outs(cp, out, shapes, ref.dtype)
    for o in outs:
        _no_overlap(o, *inputs)
    n = ref.size
    if n:
        kern = rt.kernel(module, f"{base}_{_suffix(ref.dtype)}")
        grid = ew_grid(n, ref.dtype.itemsize, rt.sm_count)
        kern((grid,), (EW_THREADS,), (*inputs, *outs, _i64(n), *extra))
    return outs[0] if nout == 1 else outs


def _act1(base: str, x: Any, out: Any) -> Any:
    cp = _rt().xp
    x = _main(cp, x, "x")
    return _ew("activations", base, [x], 1, out)


def _act2(base: str, a: Any, b: Any, out: Any, names: tuple[str, str]) -> Any:
    cp = _rt().xp
    a = _main(cp, a, names[0])
    b = _like(cp, b, a, names[1])
    return _ew("activations", base, [a, b], 1, out)


def _act3(base: str, y: Any, gy: Any, ggx: Any, out: Any) -> tuple[Any, Any]:
    cp = _rt().xp
    y = _main(cp, y, "y")
    gy = _like(cp, gy, y, "gy")
    ggx = _like(cp, ggx, y, "ggx")
    return _ew("activations", base, [y, gy, ggx], 2, out)


@_on_input_device
def sigmoid_fwd(x: Any, out: Any = None) -> Any:
    """y = 1 / (1 + exp(-x))."""
    return _act1("sigmoid_fwd", x, out)


@_on_input_device
def sigmoid_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy * y * (1 - y), from the forward output y."""
    return _act2("sigmoid_bwd", y, gy, out, ("y", "gy"))


@_on_input_device
def sigmoid_bwd_bwd(y: Any, gy: Any, ggx: Any, out: Any = None) -> tuple[Any, Any]:
    """Gradients of gx = gy * y * (1 - y) given ggx: ``(ggx * gy * (1 - 2y), ggx * y * (1 - y))``
    (w.r.t. y, w.r.t. gy)."""
    return _act3("sigmoid_bwd_bwd", y, gy, ggx, out)


@_on_input_device
def tanh_fwd(x: Any, out: Any = None) -> Any:
    """y = tanh(x)."""
    return _act1("tanh_fwd", x, out)


@_on_input_device
def tanh_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy * (1 - y^2), from the forward output y."""
    return _act2("tanh_bwd", y, gy, out, ("y", "gy"))


@_on_input_device
def tanh_bwd_bwd(y: Any, gy: Any, ggx: Any, out: Any = None) -> tuple[Any, Any]:
    """Gradients of gx = gy * (1 - y^2) given ggx: ``(-2 * ggx * gy * y, ggx * (1 - y^2))``."""
    return _act3("tanh_bwd_bwd", y, gy, ggx, out)


@_on_input_device
def relu_fwd(x: Any, out: Any = None) -> Any:
    """y = max(x, 0) (NaN stays NaN)."""
    return _act1("relu_fwd", x, out)


@_on_input_device
def relu_bwd(x: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy where x > 0, else 0 (so relu'(0) = 0), from the forward input x."""
    return _act2("relu_bwd", x, gy, out, ("x", "gy"))


# ------------------------------------------------------------------------------ row kernels


#: words of T per partial state of a split row (common.cuh: SumState 1, MaxSum 2, CEState 6)
_SPLIT_STATE_WORDS = {"softmax_fwd": 2, "log_softmax_fwd": 2, "softmax_ce_fwd": 6, "softmax_ce_sparse_fwd": 2}


def _launch_rows(
    module: str,
    base: str,
    ref: Any,
    rows: int,
    cols: int,
    inputs: tuple[Any, ...],
    outputs: tuple[Any, ...],
    extra: tuple[Any, ...] = (),
    *,
    elementwise: bool,
) -> None:
    """Launches ``<base>_<layout>_<dtype>`` over [rows, cols], the layout from :func:`row_plan`.

    Row kernels take ``(*inputs, *outputs, rows, cols, *extra)``; a split row runs ``<base>_part``
    then ``<base>_fin``, both with ``(*inputs, *outputs, ws, rows, cols, chunk, nch, *extra)``, over
    slices of ``plan.slice_rows`` rows (``inputs``/``outputs`` of shape [rows, ...] are sliced;
    per-row ones too).
    """
    rt = _rt()
    sfx = _suffix(ref.dtype)
    nin = len(inputs) if elementwise else 1
    plan = row_plan(
        rows,
        cols,
        ref.dtype.itemsize,
        elementwise=elementwise,
        nin=nin,
        sm_count=rt.sm_count,
        smem_bytes=rt.smem_optin,
        l2_bytes=rt.l2_bytes,
        force=rt.force_layout,
    )
    if plan.layout != "split":
        kern = rt.kernel(module, f"{base}_{plan.layout}_{sfx}")
        if plan.smem:
            rt.allow_smem(kern, plan.smem)
        kern((plan.grid,), (plan.block,), (*inputs, *outputs, _i64(rows), _i64(cols), *extra), shared_mem=plan.smem)
        return
    part = rt.kernel(module, f"{base}_part_{sfx}")
    fin = rt.kernel(module, f"{base}_fin_{sfx}")
    ns = _SPLIT_STATE_WORDS.get(base, 1)
    ws = rt.xp.empty(plan.slice_rows * plan.nch * ns, ref.dtype)
    for r0 in range(0, rows, plan.slice_rows):
        r1 = min(rows, r0 + plan.slice_rows)
        args = (
            *(a[r0:r1] for a in inputs),
            *(o[r0:r1] for o in outputs),
            ws,
            _i64(r1 - r0),
            _i64(cols),
            _i64(plan.chunk),
            _i64(plan.nch),
            *extra,
        )
        part((plan.grid,), (plan.block,), args)
        fin((plan.fin_grid,), (plan.fin_block,), args)


def _launch_rows_ew(
    module: str, base: str, ref: Any, rows: int, cols: int, args: tuple[Any, ...], extra: tuple[Any, ...] = ()
) -> None:
    """One elementwise kernel over [rows, cols]: ``base_<dtype>(*args, rows, cols, *extra)``."""
    rt = _rt()
    kern = rt.kernel(module, f"{base}_{_suffix(ref.dtype)}")
    grid = ew_grid(rows * cols, ref.dtype.itemsize, rt.sm_count)
    kern((grid,), (EW_THREADS,), (*args, _i64(rows), _i64(cols), *extra))


def _softmax_fwd(base: str, x: Any, out: Any) -> Any:
    cp = _rt().xp
    x = _main(cp, x, "x")
    _, rows, cols = _rows_cols(x, "x")
    y = _out(cp, out, x.shape, x.dtype)
    _no_overlap(y, x)
    if x.size:
        _launch_rows(
            "softmax", base, x, rows, cols, (x.reshape(rows, cols),), (y.reshape(rows, cols),), elementwise=True
        )
    return y


def _softmax_bwd(base: str, y: Any, gy: Any, out: Any) -> Any:
    cp = _rt().xp
    y = _main(cp, y, "y")
    gy = _like(cp, gy, y, "gy")
    _, rows, cols = _rows_cols(y, "y")
    gx = _out(cp, out, y.shape, y.dtype)
    _no_overlap(gx, y, gy)
    if y.size:
        _launch_rows(
            "softmax",
            base,
            y,
            rows,
            cols,
            (y.reshape(rows, cols), gy.reshape(rows, cols)),
            (gx.reshape(rows, cols),),
            elementwise=True,
        )
    return gx


@_on_input_device
def softmax_fwd(x: Any, out: Any = None) -> Any:
    """y = exp(x - m) / sum(exp(x - m)) over the last axis, m the row max (0 where not finite)."""
    return _softmax_fwd("softmax_fwd", x, out)


@_on_input_device
def log_softmax_fwd(x: Any, out: Any = None) -> Any:
    """y = (x - m) - log(sum(exp(x - m))) over the last axis."""
    return _softmax_fwd("log_softmax_fwd", x, out)


@_on_input_device
def softmax_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = y * (gy - sum(gy * y, -1, keepdims=True)), from the forward output y."""
    return _softmax_bwd("softmax_bwd", y, gy, out)


@_on_input_device
def log_softmax_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy - exp(y) * sum(gy, -1, keepdims=True), from the forward output y."""
    return _softmax_bwd("log_softmax_bwd", y, gy, out)


# ------------------------------------------------------------------------------ losses


def _loss_inputs(t: Any, x: Any, xname: str) -> tuple[Any, Any, Any, tuple[int, ...], int, int]:
    cp = _rt().xp
    x = _main(cp, x, xname)
    t = _like(cp, t, x, "t")
    lead, rows, cols = _rows_cols(x, xname)
    return cp, t, x, lead, rows, cols


def _row_loss(base: str, t: Any, x: Any, xname: str, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    cp, t, x, lead, rows, cols = _loss_inputs(t, x, xname)
    loss = _out(cp, out, lead, x.dtype)
    _no_overlap(loss, t, x)
    if rows:
        if cols:
            _launch_rows(
                "losses",
                base,
                x,
                rows,
                cols,
                (t.reshape(rows, cols), x.reshape(rows, cols)),
                (loss.reshape(rows),),
                extra,
                elementwise=False,
            )
        else:
            loss.fill(np.nan)  # the mean over an empty axis
    return loss


def _row_loss_bwd(base: str, t: Any, x: Any, g_row: Any, xname: str, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    cp, t, x, lead, rows, cols = _loss_inputs(t, x, xname)
    g = _per_row(cp, g_row, lead, x.dtype, "g_row")
    dx = _out(cp, out, x.shape, x.dtype)
    _no_overlap(dx, t, x, g)
    if x.size:
        _launch_rows_ew("losses", base, x, rows, cols, (t, x, g, dx), extra)
    return dx


@_on_input_device
def mse_fwd(t: Any, p: Any, out: Any = None) -> Any:
    """Per-row mean((p - t)^2) over the last axis; shape ``p.shape[:-1]``."""
    return _row_loss("mse_fwd", t, p, "p", out)


@_on_input_device
def mse_bwd(t: Any, p: Any, g_row: Any, out: Any = None) -> Any:
    """dp = 2 (p - t) / C * g_row[..., None]."""
    return _row_loss_bwd("mse_bwd", t, p, g_row, "p", out)


def _eps(p: Any, eps: float) -> Any:
    if not 0.0 <= float(eps) < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}")
    return p.dtype.type(eps)


@_on_input_device
def bce_fwd(t: Any, p: Any, eps: float = 1e-7, out: Any = None) -> Any:
    """Per-row mean of -(t log(pc) + (1 - t) log(1 - pc)), pc = clip(p, eps, 1 - eps)."""
    cp = _rt().xp
    p = _main(cp, p, "p")
    return _row_loss("bce_fwd", t, p, "p", out, (_eps(p, eps),))


@_on_input_device
def bce_bwd(t: Any, p: Any, g_row: Any, eps: float = 1e-7, out: Any = None) -> Any:
    """dp = g_row / C * (p - t) / (p (1 - p)) where eps < p < 1 - eps, 0 outside (the clip)."""
    cp = _rt().xp
    p = _main(cp, p, "p")
    return _row_loss_bwd("bce_bwd", t, p, g_row, "p", out, (_eps(p, eps),))


@_on_input_device
def bce_logits_fwd(t: Any, z: Any, out: Any = None) -> Any:
    """Per-row mean of max(z, 0) - z t + log1p(exp(-|z|)) (BCE from logits)."""
    return _row_loss("bce_logits_fwd", t, z, "z", out)


@_on_input_device
def bce_logits_bwd(t: Any, z: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row / C * (sigmoid(z) - t)."""
    return _row_loss_bwd("bce_logits_bwd", t, z, g_row, "z", out)


def _ce_outs(cp: Any, out: Any, lead: tuple[int, ...], dtype: Any, nsaved: int) -> tuple[Any, tuple[Any, ...]]:
    """(loss, saved) buffers: ``out`` is None or ``(loss, saved)`` as a forward returned them."""
    if out is None:
        return cp.empty(lead, dtype), tuple(cp.empty(lead, dtype) for _ in range(nsaved))
    if (
        not isinstance(out, (tuple, list))
        or len(out) != 2
        or not isinstance(out[1], (tuple, list))
        or len(out[1]) != nsaved
    ):
        raise TypeError(f"out must be (loss, saved) with saved a tuple of {nsaved} arrays, as the forward returns")
    loss = _out(cp, out[0], lead, dtype, "out[0]")
    return loss, tuple(_out(cp, o, lead, dtype, f"out[1][{i}]") for i, o in enumerate(out[1]))


def _saved(cp: Any, saved: Any, lead: tuple[int, ...], dtype: Any, nsaved: int) -> tuple[Any, ...]:
    if not isinstance(saved, (tuple, list)) or len(saved) != nsaved:
        raise TypeError(f"saved must be the tuple of {nsaved} per-row arrays the forward returned")
    names = ("m", "log_s", "t_sum")
    return tuple(_per_row(cp, s, lead, dtype, f"saved {names[i]}") for i, s in enumerate(saved))


def _empty_ce(loss: Any, saved: tuple[Any, ...]) -> None:
    # a sum over no classes is 0; the max of an empty row is not finite, so m = 0 and log(0) = -inf
    loss.fill(0)
    saved[0].fill(0)
    saved[1].fill(-np.inf)
    for s in saved[2:]:
        s.fill(0)


@_on_input_device
def softmax_ce_fwd(z: Any, t: Any, out: Any = None) -> tuple[Any, tuple[Any, Any, Any]]:
    """Softmax cross-entropy from logits z and a dense target t (same shape).

    Returns ``(loss_row, (m, log_s, t_sum))`` per row: m = max(z) (0 where not finite),
    log_s = log(sum(exp(z - m))), t_sum = sum(t), and loss = sum(t * (log_s - (z - m))) over the
    classes with t != 0 (a zero target on a masked -inf logit adds 0). The saved
    tuple is what :func:`softmax_ce_bwd` takes; ``out`` is a ``(loss, saved)`` of such buffers.
    """
    cp = _rt().xp
    z = _main(cp, z, "z")
    t = _like(cp, t, z, "t")
    lead, rows, cols = _rows_cols(z, "z")
    loss, saved = _ce_outs(cp, out, lead, z.dtype, 3)
    for i, o in enumerate((loss, *saved)):
        _no_overlap(o, z, t, *(loss, *saved)[:i])
    if rows:
        if cols:
            outs = tuple(a.reshape(rows) for a in (loss, *saved))
            _launch_rows(
                "losses",
                "softmax_ce_fwd",
                z,
                rows,
                cols,
                (z.reshape(rows, cols), t.reshape(rows, cols)),
                outs,
                elementwise=False,
            )
        else:
            _empty_ce(loss, saved)
    return loss, saved


@_on_input_device
def softmax_ce_bwd(z: Any, saved: Any, t: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row[..., None] * (exp((z - m) - log_s) * t_sum - t), in one pass over z and t, from
    the ``saved`` tuple of :func:`softmax_ce_fwd` (m and log_s apart: exact at any logit scale)."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    t = _like(cp, t, z, "t")
    lead, rows, cols = _rows_cols(z, "z")
    m, ls, ts = _saved(cp, saved, lead, z.dtype, 3)
    g = _per_row(cp, g_row, lead, z.dtype, "g_row")
    dz = _out(cp, out, z.shape, z.dtype)
    _no_overlap(dz, z, t, m, ls, ts, g)
    if z.size:
        _launch_rows_ew("losses", "softmax_ce_bwd", z, rows, cols, (z, t, m, ls, ts, g, dz))
    return dz


@_on_input_device
def softmax_ce_sparse_fwd(z: Any, labels: Any, out: Any = None) -> tuple[Any, tuple[Any, Any]]:
    """Softmax cross-entropy from logits z and integer labels (shape ``z.shape[:-1]``, validated by
    the caller: an out-of-range label gives NaN). Returns ``(loss_row, (m, log_s))``,
    loss = log_s - (z[label] - m)."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    lead, rows, cols = _rows_cols(z, "z")
    lab = _labels(cp, labels, lead)
    loss, saved = _ce_outs(cp, out, lead, z.dtype, 2)
    for i, o in enumerate((loss, *saved)):
        _no_overlap(o, z, *(loss, *saved)[:i])
    if rows:
        if cols:
            outs = tuple(a.reshape(rows) for a in (loss, *saved))
            _launch_rows(
                "losses",
                "softmax_ce_sparse_fwd",
                z,
                rows,
                cols,
                (z.reshape(rows, cols), lab.reshape(rows)),
                outs,
                elementwise=False,
            )
        else:
            _empty_ce(loss, saved)
    return loss, saved


@_on_input_device
def softmax_ce_sparse_bwd(z: Any, saved: Any, labels: Any, g_row: Any, out: Any = None) -> Any:
    """dz = g_row[..., None] * (exp((z - m) - log_s) - onehot(labels)), one pass over z."""
    cp = _rt().xp
    z = _main(cp, z, "z")
    lead, rows, cols = _rows_cols(z, "z")
    m, ls = _saved(cp, saved, lead, z.dtype, 2)
    lab = _labels(cp, labels, lead)
    g = _per_row(cp, g_row, lead, z.dtype, "g_row")
    dz = _out(cp, out, z.shape, z.dtype)
    _no_overlap(dz, z, m, ls, g)
    if z.size:
        _launch_rows_ew("losses", "softmax_ce_sparse_bwd", z, rows, cols, (z, lab, m, ls, g, dz))
    return dz
