"""The simulated device's state: counters, the current device and stream, memory, graph capture.

Everything here is host state standing in for a GPU's: device memory is NumPy memory, a launch runs
at once on the host, and a stream orders nothing (work is done when it is queued). What a real
device refuses is refused the same way (see :class:`Capture`), and what it moves is counted (see
:class:`Counters`).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------ an H100 SXM

DEVICE_NAME = "NVIDIA H100 80GB HBM3 (simulated)"
TOTAL_MEMORY = 80 * 1024**3
SM_COUNT = 132
L2_BYTES = 50 * 1024 * 1024
SMEM_PER_BLOCK = 48 * 1024
SMEM_PER_BLOCK_OPTIN = 227 * 1024
SMEM_PER_SM = 228 * 1024
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)
WARP_SIZE = 32
COMPUTE_CAPABILITY = (9, 0)


class CUDARuntimeError(RuntimeError):
    """As ``cupy_backends.cuda.api.runtime.CUDARuntimeError(status)``: ``status`` is the cudaError_t."""

    def __init__(self, status: int) -> None:
        self.status = int(status)
        super().__init__(_RUNTIME_ERRORS.get(self.status, f"cudaError {self.status}"))


class CUDADriverError(RuntimeError):
    """As ``cupy_backends.cuda.api.driver.CUDADriverError(status)``: ``status`` is the CUresult."""

    def __init__(self, status: int) -> None:
        self.status = int(status)
        super().__init__(_DRIVER_ERRORS.get(self.status, f"CUresult {self.status}"))


def runtime_error(status: int, detail: str = "") -> CUDARuntimeError:
    """A ``CUDARuntimeError`` whose message also says what the simulated device refused."""
    exc = CUDARuntimeError(status)
    if detail:
        exc.args = (f"{exc.args[0]} ({detail})",)
    return exc


def driver_error(status: int, detail: str = "") -> CUDADriverError:
    exc = CUDADriverError(status)
    if detail:
        exc.args = (f"{exc.args[0]} ({detail})",)
    return exc


class OutOfMemoryError(MemoryError):
    """As ``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


# cudaError_t / CUresult values the simulator raises
ERR_INVALID_VALUE = 1
ERR_INVALID_DEVICE = 101
ERR_INVALID_HANDLE = 400
ERR_ILLEGAL_STATE = 401
ERR_CAPTURE_UNSUPPORTED = 900
ERR_CAPTURE_INVALIDATED = 901
ERR_CAPTURE_UNMATCHED = 903
CU_INVALID_VALUE = 1
CU_NOT_FOUND = 500
CU_LAUNCH_FAILED = 719

_RUNTIME_ERRORS = {
    ERR_INVALID_VALUE: "cudaErrorInvalidValue: invalid argument",
    ERR_INVALID_DEVICE: "cudaErrorInvalidDevice: invalid device ordinal",
    ERR_INVALID_HANDLE: "cudaErrorInvalidResourceHandle: invalid resource handle",
    ERR_ILLEGAL_STATE: "cudaErrorIllegalState: the operation cannot be performed in the present state",
    ERR_CAPTURE_UNSUPPORTED: "cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing",
    ERR_CAPTURE_INVALIDATED: (
        "cudaErrorStreamCaptureInvalidated: operation failed due to a previous error during capture"
    ),
    ERR_CAPTURE_UNMATCHED: "cudaErrorStreamCaptureUnmatched: capture was not initiated in this stream",
}
_DRIVER_ERRORS = {
    CU_INVALID_VALUE: "CUDA_ERROR_INVALID_VALUE: invalid argument",
    CU_NOT_FOUND: "CUDA_ERROR_NOT_FOUND: named symbol not found",
    CU_LAUNCH_FAILED: "CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure",
}


# ------------------------------------------------------------------------------ counters


class Counters:
    """What the simulated device did while a ``counters()`` block ran.

    ``launches``: kernels launched from the host (raw kernels and the array library's own: every
    computing call is one); ``by_kernel``: the same by name (``softmax_fwd_regs64_f32``,
    ``cupy_add``); ``graph_launches``: CUDA graphs launched (their kernels count in the bytes, not
    in ``launches``); ``bytes_read``/``bytes_written``: the sizes of the arrays each kernel reads
    and writes (a raw kernel reads its ``const T*`` arguments and writes its ``T*`` ones);
    ``syncs``: device-to-host reads (``.get()``, ``float()``, ``.item()``, ``bool()``, ...);
    ``h2d``: host-to-device copies; ``allocations``: device allocations.
    """

    def __init__(self) -> None:
        self.launches = 0
        self.by_kernel: Counter[str] = Counter()
        self.graph_launches = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.syncs = 0
        self.h2d = 0
        self.allocations = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "launches": self.launches,
            "by_kernel": dict(self.by_kernel),
            "graph_launches": self.graph_launches,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "syncs": self.syncs,
            "h2d": self.h2d,
            "allocations": self.allocations,
        }

    def __repr__(self) -> str:
        return "Counters(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "by_kernel") + ")"


_active: list[Counters] = []


@contextlib.contextmanager
def counters() -> Iterator[Counters]:
    """``with counters() as c:``: counts what the simulated device does inside (nested blocks each count)."""
    c = Counters()
    _active.append(c)
    try:
        yield c
    finally:
        _active.remove(c)


def count_launch(name: str, read: int, written: int, *, in_graph: bool = False) -> None:
    for c in _active:
        if not in_graph:
            c.launches += 1
            c.by_kernel[name] += 1
        c.bytes_read += read
        c.bytes_written += written


def count(field: str, n: int = 1) -> None:
    for c in _active:
        setattr(c, field, getattr(c, field) + n)


# ------------------------------------------------------------------------------ devices


class _State(threading.local):
    def __init__(self) -> None:
        self.device = 0
        self.streams: list[Any] = []  # `with stream:` blocks, innermost last


state = _State()
DEVICE_COUNT = 1


def check_device(i: int) -> int:
    i = int(i)
    if not 0 <= i < DEVICE_COUNT:
        raise CUDARuntimeError(ERR_INVALID_DEVICE)
    return i


# ------------------------------------------------------------------------------ memory


class Memory:
    """As ``cupy.cuda.Memory(size)``: one device allocation of ``size`` bytes (host memory here), on
    the current device; ``ptr`` is its address."""

    __slots__ = ("_buf", "size", "device_id", "__weakref__")

    def __init__(self, size: int) -> None:
        size = int(size)
        if size < 0:
            raise ValueError("negative allocation size")
        pool.reserve(size)
        try:
            buf = np.empty(max(size, 1), np.uint8)
        except MemoryError:
            pool.release(size)
            raise OutOfMemoryError(size, pool.used, pool.limit) from None
        weakref.finalize(buf, _release, size)
        count("allocations")
        self._buf = buf
        self.size = size
        self.device_id = state.device

    @property
    def ptr(self) -> int:
        return address(self._buf)


class MemoryPointer:
    """As ``cupy.cuda.MemoryPointer(mem, offset)``: an allocation and an offset into it."""

    __slots__ = ("mem", "ptr", "device_id")

    def __init__(self, mem: Memory, offset: int) -> None:
        self.mem = mem
        self.device_id = mem.device_id
        self.ptr = mem.ptr + int(offset)

    @classmethod
    def _at(cls, ptr: int, device_id: int) -> MemoryPointer:
        """A pointer into memory this module did not allocate itself (an array's data)."""
        mp = cls.__new__(cls)
        mp.mem, mp.ptr, mp.device_id = None, int(ptr), device_id
        return mp

    @property
    def device(self) -> Any:
        from .cupy.cuda import Device  # noqa: PLC0415

        return Device(self.device_id)

    def __int__(self) -> int:
        return self.ptr

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer._at(self.ptr + int(offset), self.device_id)


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class Pool:
    """The device memory in use (as CuPy's default pool reports it) and its limit."""

    def __init__(self) -> None:
        self.used = 0
        self.limit = 0
        self.lock = threading.Lock()

    def reserve(self, nbytes: int) -> None:
        with self.lock:
            cap = self.limit or TOTAL_MEMORY
            if self.used + nbytes > cap:
                raise OutOfMemoryError(nbytes, self.used, self.limit)
            self.used += nbytes

    def release(self, nbytes: int) -> None:
        with self.lock:
            self.used -= nbytes


pool = Pool()
_owned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _release(nbytes: int) -> None:
    pool.release(nbytes)


def adopt(root: np.ndarray) -> None:
    """Count ``root`` (a NumPy array that owns its memory) as one device allocation, freed with it."""
    n = root.nbytes
    try:
        pool.reserve(n)
    except OutOfMemoryError:
        raise
    weakref.finalize(root, _release, n)
    count("allocations")


def default_malloc(nbytes: int) -> MemoryPointer:
    return MemoryPointer(Memory(nbytes), 0)


allocator: list[Callable[[int], MemoryPointer] | None] = [None]


def malloc(nbytes: int) -> MemoryPointer:
    """An allocation through the current allocator (``cupy.cuda.set_allocator``)."""
    fn = allocator[0]
    return default_malloc(nbytes) if fn is None else fn(nbytes)


# ------------------------------------------------------------------------------ streams and capture


class Capture:
    """A CUDA graph being captured on a stream: the work queued is recorded, not run."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.nodes: list[tuple[str, Callable[[], None], int, int]] = []
        self.invalid: str | None = None

    def record(self, name: str, fn: Callable[[], None], read: int, written: int) -> None:
        self.nodes.append((name, fn, read, written))


_captures: list[Capture] = []  # process-wide: a global-mode capture refuses unsafe calls from any thread


def capturing() -> Capture | None:
    """The capture that work queued now goes to (the current stream's), or None."""
    stream = state.streams[-1] if state.streams else None
    cap = getattr(stream, "_capture", None)
    return cap


def refuse_in_capture(what: str) -> None:
    """Raise as the runtime does when ``what`` (a sync, a device-to-host copy, a module load) is
    called while a stream captures; the capture is invalidated."""
    if _captures:
        for cap in _captures:
            cap.invalid = cap.invalid or what
        raise runtime_error(ERR_CAPTURE_UNSUPPORTED, what)


def run(name: str, fn: Callable[[], None], read: int, written: int) -> None:
    """Queue a kernel that writes into existing memory: run now, or record it into the capture."""
    cap = capturing()
    if cap is not None:
        cap.record(name, fn, read, written)
        return
    fn()
    count_launch(name, read, written)


def d2h(nbytes: int = 0) -> None:
    """A device-to-host read: refused while capturing, counted as a sync."""
    refuse_in_capture("a device-to-host copy")
    count("syncs")


def h2d() -> None:
    refuse_in_capture("a copy from pageable host memory")
    count("h2d")


def synchronize(what: str = "a synchronize") -> None:
    refuse_in_capture(what)
