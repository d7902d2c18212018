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


def simulated() -> bool:
    """True when ``GPUGRAD_SIMULATE_CUDA`` asks for the simulated CUDA device
    (:mod:`gpugrad.testing.simulated_cuda`) in place of CuPy."""
    return os.environ.get("GPUGRAD_SIMULATE_CUDA", "").strip().lower() not in ("", "0", "false", "no")


def cupy():
    """The CuPy module, or None where it is not installed (imported once, on first need). With
    ``GPUGRAD_SIMULATE_CUDA=1``, the simulated device's stand-in for it."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        if simulated():
            from .testing import simulated_cuda  # noqa: PLC0415

            _cupy = simulated_cuda.install()
            return _cupy
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


# An array traced by gg.jit (gpugrad.jit.trace.Traced) answers gg_cuda, gg_xp and gg_device itself:
# the checks below fall back to those attributes only after the NumPy and CuPy fast paths.


def is_cupy_array(a) -> bool:
    cp = _cupy
    return cp is not None and (isinstance(a, cp.ndarray) or getattr(a, "gg_cuda", False))


def get_array_module(a):
    """numpy for NumPy arrays and scalars, cupy for CuPy arrays."""
    if type(a) is np.ndarray or isinstance(a, np.generic):
        return np
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        return cp
    return getattr(a, "gg_xp", np)


def device_of(a) -> str:
    if type(a) is np.ndarray or isinstance(a, np.generic):
        return "cpu"
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        return f"cuda:{a.device.id}"
    return getattr(a, "gg_device", "cpu")


_host_hook = None  # set by gg.jit while it traces
_check_hook = None
_array_hook = None
_call_hook = None


@contextlib.contextmanager
def untraced():
    """Host-side draws and checks inside run once, unrecorded, even while a compiled step traces
    (a layer drawing its initial weights on its first call)."""
    global _host_hook, _check_hook, _array_hook, _call_hook
    saved = _host_hook, _check_hook, _array_hook, _call_hook
    _host_hook = _check_hook = _array_hook = _call_hook = None
    try:
        yield
    finally:
        _host_hook, _check_hook, _array_hook, _call_hook = saved


def host_array(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``: an array made by host-side code (random numbers). While a compiled
    step traces, the call is also recorded to run at every replay, so each call draws afresh."""
    hook = _array_hook
    return fn(*args, **kwargs) if hook is None else hook(fn, args, kwargs)


def array_call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``: a pure function of arrays that a trace cannot look inside (SciPy's or
    CuPy's special functions). While a compiled step traces, it is recorded as one call on the
    traced arrays, run again at every replay on that call's arrays."""
    hook = _call_hook
    return fn(*args, **kwargs) if hook is None else hook(fn, args, kwargs)


def array_launch(fn, args: tuple, writes: tuple[int, ...]) -> None:
    """``fn(*args)``, a launch that writes into the arrays at positions ``writes`` (a user's raw
    kernel). While a compiled step traces, it is recorded with those writes, so every replay (and
    a captured CUDA graph) launches it on that call's arrays."""
    hook = _call_hook
    if hook is None:
        fn(*args)
    else:
        hook(fn, args, {}, writes=writes)


def checked(fn, *args) -> None:
    """Run the value check ``fn(*args)`` (it raises on bad values, such as labels out of range).
    While a compiled step traces, the check is also recorded to run on every call's arrays."""
    hook = _check_hook
    if hook is None:
        fn(*args)
    else:
        hook(fn, args)


_deferred: list = []  # (0-d device bool array: the check failed, function making the error's message)
_DEFERRED_MAX = 32
_PACK_MAX = 1 << 20  # values up to this size come back in one read with the verdicts


def defer_check(failed, message) -> None:
    """A value check of device arrays whose verdict stays on the device: ``failed`` is a 0-d device
    bool array, ``message()`` makes the text of the ``ValueError`` raised when it is true. Nothing
    is read back now, so the host keeps running ahead of the GPU; the error is raised at the next
    read of a device value (``Tensor.numpy``/``item``/``float``, a move to the CPU,
    ``gg.cuda.synchronize``), as a CUDA device assert surfaces at the next synchronization. At most
    a few dozen checks wait: the next one reads them all."""
    _deferred.append((failed, message))
    if len(_deferred) >= _DEFERRED_MAX:
        raise_deferred()


def read(a):
    """A host (NumPy) copy of the device array ``a``, in one device-to-host read that also brings
    back the verdicts of waiting deferred checks (see :func:`defer_check`); a failed one raises."""
    if not _deferred:
        return a.get()
    if a.nbytes > _PACK_MAX:  # a large value: the verdicts first, rather than a copy of it on the device
        raise_deferred()
        return a.get()
    cp = cupy()
    pending = _deferred[:]
    try:
        flags = cp.stack([f.reshape(()) for f, _ in pending]).astype(np.uint8)
        packed = cp.concatenate([flags, cp.ascontiguousarray(a).reshape(-1).view(np.uint8)])
    except ValueError:  # flags or the array on several devices
        raise_deferred()
        return a.get()
    _deferred.clear()
    host = packed.get()
    for failed, (_, message) in zip(host[: len(pending)], pending):
        if failed:
            raise ValueError(message())
    return host[len(pending):].view(a.dtype).reshape(a.shape)


def raise_deferred() -> None:
    """Raise the first failed deferred check (see :func:`defer_check`), reading all in one go."""
    if not _deferred:
        return
    pending = _deferred[:]
    _deferred.clear()
    cp = cupy()
    try:
        verdicts = cp.stack([f.reshape(()) for f, _ in pending]).get()
    except ValueError:  # flags on several devices
        verdicts = [bool(f.get()) for f, _ in pending]
    for failed, (_, message) in zip(verdicts, pending):
        if failed:
            raise ValueError(message())


def host_value(fn):
    """``fn()``: Python numbers computed on the host (a learning rate, a step count). While a
    compiled step traces, ``fn`` is also recorded to run again at every replay, and its numbers
    come back as values that array calls read afresh each time."""
    hook = _host_hook
    return fn() if hook is None else hook(fn)


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
        return read(a)
    cp = cupy()
    with cp.cuda.Device(int(dev.split(":")[1])):
        return cp.asarray(a)


def array_on(data, dev: str, dtype=None):
    """Make an array on ``dev`` from a Python number, list, NumPy or CuPy array."""
    if getattr(data, "gg_trace", None) is not None and device_of(data) == dev:  # traced by gg.jit
        return data.gg_xp.asarray(data, dtype=dtype)
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
