"""NVRTC without a GPU: finding and loading libnvrtc (through CuPy, or NVIDIA's ``cuda-bindings``
where CuPy is absent) and compiling the kernels' sources to PTX or cubin."""

from __future__ import annotations

import ctypes
import glob
import os
import site
import sys
import threading
from pathlib import Path
from typing import Any

from .sources import _CUPY_IMPLICIT_OPTIONS, COMPILE_OPTIONS, KernelCompileError, NvrtcUnavailable, _source

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
    return _nvrtc_compile_source(_source(module), f"{module}.cu", arch, module=module)
