"""Array backends: NumPy on the CPU, CuPy on CUDA devices.

This is the only module (with the kernel loader) that imports CuPy, and it does so lazily, so
``import gpugrad`` stays fast and works where CuPy is absent. A device is named ``'cpu'`` or
``'cuda:N'``; ``'cuda'`` means the current CUDA device.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

_cupy = None
_cupy_checked = False
_cuda_ok: bool | None = None


def cupy():
    """The CuPy module, or None where it is not installed (imported once, on first need)."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy as cp  # noqa: PLC0415

            _cupy = cp
        except Exception:  # ImportError, or a broken CUDA install
            _cupy = None
    return _cupy


def cuda_available() -> bool:
    """True when CuPy imports and at least one CUDA device answers."""
    global _cuda_ok
    if _cuda_ok is None:
        cp = cupy()
        try:
            _cuda_ok = cp is not None and cp.cuda.runtime.getDeviceCount() > 0
        except Exception:
            _cuda_ok = False
    return _cuda_ok


def cuda_device_count() -> int:
    return cupy().cuda.runtime.getDeviceCount() if cuda_available() else 0


def is_cupy_array(a) -> bool:
    cp = _cupy
    return cp is not None and isinstance(a, cp.ndarray)


def get_array_module(a):
    """numpy for NumPy arrays and scalars, cupy for CuPy arrays."""
    if type(a) is np.ndarray or _cupy is None:
        return np
    return _cupy if isinstance(a, _cupy.ndarray) else np


def device_of(a) -> str:
    if type(a) is np.ndarray or _cupy is None or not isinstance(a, _cupy.ndarray):
        return "cpu"
    return f"cuda:{a.device.id}"


def normalize_device(name) -> str:
    """'cpu', 'cuda' or 'cuda:N' (also 'gpu', torch.device-like objects) -> 'cpu' or 'cuda:N'.

    Raises RuntimeError when a CUDA device is asked for and none is usable.
    """
    if name is None:
        return default_device()
    s = str(name).lower()
    if s == "cpu":
        return "cpu"
    if s in ("cuda", "gpu") or s.startswith(("cuda:", "gpu:")):
        if not cuda_available():
            why = "CuPy is not installed" if cupy() is None else "no CUDA device answers"
            raise RuntimeError(
                f"device {name!r} was asked for, but no usable GPU is present ({why}); "
                "use device='cpu' or install gpugrad[cuda12] / gpugrad[cuda13] on a CUDA machine"
            )
        if ":" in s:
            idx = int(s.split(":", 1)[1])
            n = cuda_device_count()
            if not 0 <= idx < n:
                raise RuntimeError(f"device {name!r} does not exist: {n} CUDA device(s) present")
        else:
            idx = cupy().cuda.runtime.getDevice()
        return f"cuda:{idx}"
    raise ValueError(f"unknown device {name!r}: expected 'cpu', 'cuda' or 'cuda:N'")


_local = threading.local()
_default: str | None = None


def _initial_default() -> str:
    env = os.environ.get("GPUGRAD_DEVICE")
    if env:
        return normalize_device(env)
    return "cuda:0" if cuda_available() else "cpu"


def default_device() -> str:
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    global _default
    if _default is None:
        _default = _initial_default()
    return _default


def set_default_device(name) -> None:
    global _default
    _default = normalize_device(name)


@contextlib.contextmanager
def device(name):
    """Context manager: constructors inside make tensors on ``name`` by default."""
    dev = normalize_device(name)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(dev)
    try:
        if dev == "cpu":
            yield dev
        else:
            with cupy().cuda.Device(int(dev.split(":")[1])):
                yield dev
    finally:
        stack.pop()


def xp_for(dev: str):
    return np if dev == "cpu" else cupy()


def to_device(a, dev: str):
    """Move an array to ``dev`` ('cpu' or 'cuda:N'); returns it unchanged when it is already there."""
    here = device_of(a)
    if here == dev:
        return a
    if dev == "cpu":
        return a.get()
    cp = cupy()
    with cp.cuda.Device(int(dev.split(":")[1])):
        return cp.asarray(a)


def array_on(data, dev: str, dtype=None):
    """Make an array on ``dev`` from a Python number, list, NumPy or CuPy array."""
    if dev == "cpu":
        if is_cupy_array(data):
            data = data.get()
        return np.asarray(data, dtype=dtype)
    cp = cupy()
    with cp.cuda.Device(int(dev.split(":")[1])):
        return cp.asarray(data, dtype=dtype)


def cupy_special():
    """``cupyx.scipy.special`` (erf and friends on CuPy arrays), imported on first need."""
    import cupyx.scipy.special as special  # noqa: PLC0415

    return special
