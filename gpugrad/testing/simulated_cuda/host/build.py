"""Build CUDA C sources for the CPU with the host C++ compiler, so that their kernels run on NumPy memory.

A source is compiled once (``g++ -std=c++17 -O1``) against ``cuda_host.h`` (CUDA's built-ins: thread
and block indices, barriers, warp shuffles, shared memory), with a generated table of its ``extern
"C"`` kernels, into a shared library cached by a hash of everything that goes into it. Each entry
answers its parameters' sizes and kinds (read-only pointer, pointer, value) and launches the kernel
over a grid, every CUDA thread of a block a cooperating fiber. This checks logic, not speed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_host.h"
FLAGS = ("-std=c++17", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-w")

_EXTERN_RE = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(\w+)\s*\(')


_DYN_SMEM_RE = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:]*(?:\s+[A-Za-z_][\w:]*)*?)"
    r"\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?(\w+)\s*\[\s*\]\s*;"
)


def host_source(code: str) -> str:
    """``code`` with each ``extern __shared__ T name[];`` (dynamic shared memory, one buffer per
    launch in CUDA) turned into a pointer to the harness's dynamic shared memory."""

    def sub(m: re.Match[str]) -> str:
        typ, name = m.group(1), m.group(2)
        if name == "gg_dyn_smem":
            return m.group(0)
        return f"{typ}* const {name} = reinterpret_cast<{typ}*>(gg_dyn_smem);"

    return _DYN_SMEM_RE.sub(sub, code)


class HostCompileError(RuntimeError):
    """The host compiler rejected a source; ``log`` holds its output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def compiler() -> str | None:
    """The host C++ compiler: $CXX, else g++, c++ or clang++ on PATH."""
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def extern_kernels(code: str) -> list[str]:
    """The names of the ``extern "C" __global__ void`` kernels written out in ``code``."""
    return list(dict.fromkeys(_EXTERN_RE.findall(code)))


def registry(path: Path, names: Iterable[str]) -> str:
    """A C++ unit including ``path`` that exports ``gg_param_sizes``, ``gg_param_kinds`` and
    ``gg_launch`` over the kernels ``names``."""
    rows = "\n".join(
        f'    {{"{n}", [](dim3 g, dim3 b, size_t s, void** a) {{ return gg_host::launch_packed(&{n}, g, b, s, a); }},'
        f" [] {{ return gg_host::param_sizes(&{n}); }}, [] {{ return gg_host::param_kinds(&{n}); }}}},"
        for n in names
    )
    return f"""#include "cuda_host.h"
#include "{path.as_posix()}"

namespace {{
struct Entry {{
    const char* name;
    std::string (*launch)(dim3, dim3, size_t, void**);
    std::string (*sizes)();
    std::string (*kinds)();
}};
const Entry entries[] = {{
{rows}
    {{nullptr, nullptr, nullptr, nullptr}}
}};
const Entry* find(const char* name) {{
    for (const Entry& e : entries) {{
        if (e.name && std::strcmp(e.name, name) == 0) return &e;
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

extern "C" __attribute__((visibility("default"))) int gg_param_kinds(const char* name, char* buf, size_t len) {{
    const Entry* e = find(name);
    if (!e) return 1;
    copy_out(e->kinds(), buf, len);
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


def cache_dir() -> Path:
    """Where built libraries are kept: $GG_HOST_KERNEL_CACHE, else ~/.cache/gpugrad/host_kernels."""
    root = os.environ.get("GG_HOST_KERNEL_CACHE")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "gpugrad" / "host_kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        path = Path(tempfile.gettempdir()) / "gpugrad_host_kernels"
        path.mkdir(parents=True, exist_ok=True)
        return path


@functools.cache
def _compiler_version(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout


def _key(cxx: str, *parts: str) -> str:
    h = hashlib.sha256()
    for part in (_compiler_version(cxx), " ".join(FLAGS), HEADER.read_text(), *parts):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


class Build:
    """A started or finished build of one library: ``wait()`` returns its path."""

    def __init__(self, lib: Path, proc: subprocess.Popen[str] | None = None, tmp: Path | None = None) -> None:
        self.lib, self.proc, self.tmp = lib, proc, tmp

    def wait(self) -> Path:
        if self.proc is not None:
            log, _ = self.proc.communicate()
            proc, self.proc = self.proc, None
            if proc.returncode != 0:
                raise HostCompileError(f"the host build of {self.lib.name} failed:\n{log[-6000:]}", log)
            os.replace(self.tmp, self.lib)  # atomic: a concurrent process sees a whole library or none
        return self.lib


def start_build(
    code: str, names: Iterable[str], *, tag: str = "source", include_dirs: Iterable[Path] = (), key_extra: str = ""
) -> Build:
    """Start compiling ``code`` with its kernels ``names`` (nothing to do when cached)."""
    cxx = compiler()
    if cxx is None:
        raise HostCompileError("no C++ compiler found (set $CXX, or install g++)")
    names = list(names)
    cache = cache_dir()
    code = host_source(code)
    key = _key(cxx, code, ",".join(names), key_extra)
    lib = cache / f"{tag}-{key}.so"
    if lib.exists():
        return Build(lib)
    src = cache / f"{tag}-{key}.cu"
    if not src.exists():
        tmp_src = src.with_suffix(f".{os.getpid()}.tmp")
        tmp_src.write_text(code)
        os.replace(tmp_src, src)
    unit = cache / f"{tag}-{key}-{os.getpid()}.cpp"
    unit.write_text(registry(src, names))
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    includes = [f"-I{HERE}", *(f"-I{d}" for d in include_dirs)]
    cmd = [cxx, *FLAGS, *includes, "-o", str(tmp), str(unit)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Build(lib, proc, tmp)


def build_source(code: str, names: Iterable[str], **kwargs) -> Path:
    """The library of ``code`` (built now unless cached)."""
    return start_build(code, names, **kwargs).wait()
