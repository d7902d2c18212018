"""What a GPU record says about the machine it ran on.

The driver version is the one ``nvidia-smi`` prints (e.g. ``580.159.04``); CUDA's
``cudaDriverGetVersion`` gives only the CUDA API level the driver supports (``13000``), recorded
beside it as ``cuda_driver_api``. Package versions come from the installed distributions, so torch
is not imported here.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SMI_FIELDS = ("name", "driver_version", "memory.total")
#: asked for separately, so that a field an older nvidia-smi lacks cannot hide the driver version
SMI_EXTRA_FIELDS = ("clocks.max.sm", "clocks.max.memory", "power.limit")


def _run(cmd: list[str], timeout: float = 15) -> str | None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        return res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _smi(fields: tuple[str, ...]) -> dict[str, str]:
    text = _run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    if not text:
        return {}
    values = [v.strip() for v in text.splitlines()[0].split(",")]
    return dict(zip(fields, values, strict=False))


def nvidia_smi() -> dict[str, str] | None:
    """The first GPU's ``nvidia-smi --query-gpu`` fields, or None where nvidia-smi does not answer."""
    main = _smi(SMI_FIELDS)
    return {**main, **_smi(SMI_EXTRA_FIELDS)} if main else None


def cuda_version(v: int) -> str:
    """13000 -> '13.0'."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("numpy", "cupy-cuda13x", "cupy-cuda12x", "torch", "pytest"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def git_commit() -> str | None:
    """The checkout's commit (``+changes`` when tracked files differ); ``$GIT_COMMIT`` where the
    tree is a copy without ``.git`` (as on a lent GPU machine)."""
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    if commit is None:
        return os.environ.get("GIT_COMMIT") or None
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return commit + ("+changes" if dirty else "")


def cuda_info() -> dict[str, Any]:
    """Device name, memory, SMs, L2 and CUDA versions through CuPy; ``{"error": ...}`` without a GPU."""
    try:
        import cupy as cp  # noqa: PLC0415

        rt = cp.cuda.runtime
        dev = rt.getDevice()
        props = rt.getDeviceProperties(dev)
        name = props["name"]
        return {
            "device": name.decode() if isinstance(name, bytes) else str(name),
            "device_count": rt.getDeviceCount(),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "multiprocessors": int(props["multiProcessorCount"]),
            "l2_bytes": int(props["l2CacheSize"]),
            "memory_bytes": int(props["totalGlobalMem"]),
            "cuda_runtime": cuda_version(rt.runtimeGetVersion()),
            "cuda_driver_api": cuda_version(rt.driverGetVersion()),
            "nvrtc": nvrtc_version(cp),
        }
    except Exception as exc:  # noqa: BLE001 - CuPy missing, no driver, no device: all mean "no GPU"
        return {"error": f"{type(exc).__name__}: {exc}"}


def nvrtc_version(cp: Any) -> str:
    """NVRTC's version through CuPy, or why it cannot be read: a missing NVRTC is its own finding
    (kernels cannot compile), not a failed device query."""
    try:
        from cupy.cuda import nvrtc  # noqa: PLC0415

        return ".".join(map(str, nvrtc.getVersion()))
    except Exception as exc:  # noqa: BLE001 - no NVRTC library, or no binding
        return f"unavailable ({type(exc).__name__}: {exc})"


def environment(gpu: bool = True) -> dict[str, Any]:
    """The record's ``environment``: date, git, Python, packages, nvidia-smi, and CUDA when ``gpu``."""
    smi = nvidia_smi()
    env: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": package_versions(),
        "nvidia_smi": smi,
        "driver_version": smi.get("driver_version") if smi else None,
    }
    if gpu:
        env.update(cuda_info())
    if "device" not in env:
        env["device"] = smi.get("name") if smi else "cpu"
    return env
