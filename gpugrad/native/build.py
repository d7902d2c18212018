"""Compiling C with the system compiler into a shared library cached on disk by a hash of the
source, the flags, the compiler and the CPU (used by the native graph engine and by ``gg.jit``'s
fused CPU loops). ``GPUGRAD_CACHE_DIR`` moves the cache (default ``~/.cache/gpugrad``)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path


@functools.cache
def compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return shutil.which(cc)
    return None


def cache_dir(kind: str) -> Path:
    root = os.environ.get("GPUGRAD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gpugrad")
    return Path(root) / kind


@functools.cache
def machine() -> str:
    """What a cache key knows of the compiler and the CPU (``-march=native`` depends on it)."""
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
    except (OSError, subprocess.SubprocessError, TypeError):
        version = ""
    return cpu + version


def build(src: str, flags: list[str], libs: list[str], kind: str, suffix: str = ".so", what: str = "C",
          native: bool = True) -> Path:
    """The shared library compiled from ``src`` (cached under ``cache_dir(kind)``); RuntimeError if
    there is no compiler or the compile fails. ``native``: the flags tune for this CPU, so the
    cache key holds the CPU and the compiler's version (else the source and flags alone)."""
    parts = [src, *flags, *libs] + ([machine()] if native else [platform.machine()])
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    out = cache_dir(kind) / f"{key}{suffix}"
    if out.exists():
        return out
    if compiler() is None:
        raise RuntimeError("no C compiler found (cc, gcc or clang; or set CC)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        c = Path(tmp) / "k.c"
        c.write_text(src)
        so = Path(tmp) / f"k{suffix}"
        r = subprocess.run([compiler(), *flags, str(c), "-o", str(so), *libs], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"the C compile of {what} failed:\n{r.stderr[-2000:]}")
        os.replace(so, out)  # atomic: another process may be building the same library
    return out
