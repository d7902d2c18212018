"""Build ``kernels/*.cu`` for the CPU with the host C++ compiler and launch them from Python.

Each module is compiled once (``g++ -std=c++17 -O1``) against ``cuda_host.h``, with a generated
table of its kernels (the names of :func:`gpugrad.kernels.kernel_names`) into a shared library,
cached by a hash of everything that goes into it. :class:`HostRuntime` plugs the libraries into
:mod:`gpugrad.kernels` in place of CuPy, so the launch wrappers (layout choice, grids, shared
memory sizes, split-row slices) run unchanged on NumPy arrays. This checks logic, not speed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad import kernels as K

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_host.h"
FLAGS = ("-std=c++17", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-w")


def compiler() -> str | None:
    """The host C++ compiler: $CXX, else g++, c++ or clang++ on PATH."""
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _registry(module: str) -> str:
    return _registry_of(K.KERNEL_DIR / (module + ".cu"), K.kernel_names(module))


def _registry_of(path: Path, names: list[str]) -> str:
    rows = "\n".join(
        f'    {{"{n}", [](dim3 g, dim3 b, size_t s, void** a) {{ return gg_host::launch_packed(&{n}, g, b, s, a); }},'
        f" [] {{ return gg_host::param_sizes(&{n}); }}}},"
        for n in names
    )
    return f"""#include "cuda_host.h"
#include "{path.as_posix()}"

namespace {{
struct Entry {{
    const char* name;
    std::string (*launch)(dim3, dim3, size_t, void**);
    std::string (*sizes)();
}};
const Entry entries[] = {{
{rows}
}};
const Entry* find(const char* name) {{
    for (const Entry& e : entries) {{
        if (std::strcmp(e.name, name) == 0) return &e;
    }}
    return nullptr;
}}
void copy_out(const std::string& s, char* buf, size_t len) {{
    if (len == 0) return;
    std::strncpy(buf, s.c_str(), len - 1);
    buf[len - 1] = 0;
}}
}}  // namespace

extern "C" __attribute__((visibility("default"))) int gg_param_sizes(const char* name, char* buf, size_t len) {{
    const Entry* e = find(name);
    if (!e) return 1;
    copy_out(e->sizes(), buf, len);
    return 0;
}}

extern "C" __attribute__((visibility("default"))) int gg_launch(const char* name, unsigned gx, unsigned gy,
        unsigned gz, unsigned bx, unsigned by, unsigned bz, size_t smem, void** args, char* err, size_t len) {{
    const Entry* e = find(name);
    if (!e) {{
        copy_out("no such kernel", err, len);
        return 1;
    }}
    dim3 g, b;
    g.x = gx; g.y = gy; g.z = gz;
    b.x = bx; b.y = by; b.z = bz;
    const std::string msg = e->launch(g, b, smem, args);
    copy_out(msg, err, len);
    return msg.empty() ? 0 : 1;
}}
"""


def _cache_dir() -> Path:
    root = os.environ.get("GG_HOST_KERNEL_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "gpugrad" / "host_kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.gettempdir()) / "gpugrad_host_kernels"


def _key(cxx: str, module: str, text: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    src = (HERE / "selftest.cu").read_text() + K.source("softmax") if module == "selftest" else K.source(module)
    for part in (version, " ".join(FLAGS), text, HEADER.read_text(), src):
        h.update(part.encode())
    return h.hexdigest()[:20]


#: kernels of tests/cuda_host/selftest.cu, which check the harness itself
SELFTEST = (
    "shuffles",
    "ballot",
    "block_sum_and_reverse",
    "atomics",
    "bad_full_mask",
    "bad_half_barrier",
    "bad_exit_at_barrier",
    "bad_masks",
)


def build(modules: tuple[str, ...] = (*K.MODULES, "selftest")) -> dict[str, Path]:
    """Shared libraries of ``modules`` (built in parallel where not cached); ``'selftest'`` is the
    harness's own test kernels."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found")
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    jobs: list[tuple[str, Path, Path, subprocess.Popen[str]]] = []
    for module in modules:
        text = _registry_of(HERE / "selftest.cu", list(SELFTEST)) if module == "selftest" else _registry(module)
        lib = cache / f"{module}-{_key(cxx, module, text)}.so"
        out[module] = lib
        if lib.exists():
            continue
        src = cache / f"{module}-{os.getpid()}.cpp"
        src.write_text(text)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cxx, *FLAGS, f"-I{HERE}", f"-I{K.KERNEL_DIR}", "-o", str(tmp), str(src)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        jobs.append((module, lib, tmp, proc))
    errors = []
    for module, lib, tmp, proc in jobs:
        log, _ = proc.communicate()
        if proc.returncode != 0:
            errors.append(f"{module}: {log[-6000:]}")
        else:
            os.replace(tmp, lib)  # atomic: a concurrent session sees a whole library or none
    if errors:
        raise RuntimeError("host build of the CUDA kernels failed:\n" + "\n".join(errors))
    return out


class HostKernelError(RuntimeError):
    pass


class HostKernel:
    """Called like ``cupy.RawKernel``: ``kern(grid, block, args, shared_mem=0)``; args are NumPy
    arrays (passed as pointers) and NumPy scalars (passed by value, sizes checked)."""

    def __init__(self, lib: ctypes.CDLL, name: str) -> None:
        self.lib = lib
        self.name = name
        buf = ctypes.create_string_buffer(1024)
        if lib.gg_param_sizes(name.encode(), buf, ctypes.c_size_t(1024)) != 0:
            raise KeyError(name)
        self.sizes = [int(x) for x in buf.value.decode().split(",") if x]
        self.launches = 0
        self.max_dynamic_shared_size_bytes = 48 * 1024

    def _arg(self, i: int, a: Any) -> ctypes._SimpleCData:
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise HostKernelError(f"{self.name}: argument {i} is not contiguous")
            v: Any = ctypes.c_void_p(a.ctypes.data)
        elif isinstance(a, np.generic):
            v = np.ctypeslib.as_ctypes_type(a.dtype)(a.item())
        else:
            raise HostKernelError(f"{self.name}: argument {i} is a {type(a).__name__}; pass NumPy arrays or scalars")
        if ctypes.sizeof(v) != self.sizes[i]:
            raise HostKernelError(
                f"{self.name}: argument {i} has {ctypes.sizeof(v)} bytes, the kernel takes {self.sizes[i]}"
            )
        return v

    def __call__(
        self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], shared_mem: int = 0
    ) -> None:
        if len(args) != len(self.sizes):
            raise HostKernelError(f"{self.name} takes {len(self.sizes)} arguments, got {len(args)}")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise HostKernelError(
                f"{self.name}: {shared_mem} bytes of dynamic shared memory without the opt-in "
                f"attribute ({self.max_dynamic_shared_size_bytes})"
            )
        vals = [self._arg(i, a) for i, a in enumerate(args)]
        ptrs = (ctypes.c_void_p * max(1, len(vals)))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
        g = (tuple(grid) + (1, 1))[:3]
        b = (tuple(block) + (1, 1))[:3]
        err = ctypes.create_string_buffer(512)
        rc = self.lib.gg_launch(
            self.name.encode(),
            *(ctypes.c_uint(int(x)) for x in (*g, *b)),
            ctypes.c_size_t(int(shared_mem)),
            ptrs,
            err,
            ctypes.c_size_t(512),
        )
        self.launches += 1
        if rc != 0:
            raise HostKernelError(f"{self.name} grid={g} block={b} smem={shared_mem}: {err.value.decode()}")


class HostRuntime(K.Runtime):
    """:class:`gpugrad.kernels.Runtime` over the host-built kernels and NumPy.

    The device limits are an H100's by default; tests shrink them to reach every layout with
    small arrays (few multiprocessors: split rows; little shared memory or L2: split and slices).
    """

    def __init__(
        self, libs: dict[str, Path], *, sm_count: int = 132, smem_optin: int = 227 * 1024, l2_bytes: int = 50 << 20
    ) -> None:
        super().__init__(np, sm_count=sm_count, smem_optin=smem_optin, l2_bytes=l2_bytes)
        self._libs = {m: ctypes.CDLL(str(p)) for m, p in libs.items()}
        self._kernels: dict[str, HostKernel] = {}
        self.launched: list[str] = []

    def kernel(self, module: str, name: str) -> Any:
        if name not in (SELFTEST if module == "selftest" else K.kernel_names(module)):
            raise KeyError(f"module {module!r} has no kernel {name!r}")
        kern = self._kernels.get(name)
        if kern is None:
            kern = self._kernels[name] = HostKernel(self._libs[module], name)
        self.launched.append(name)
        return kern

    def allow_smem(self, kern: Any, nbytes: int) -> None:
        if nbytes > 48 * 1024:
            kern.max_dynamic_shared_size_bytes = self.smem_optin
