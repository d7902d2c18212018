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
    """As ``cupy_backends.cuda.api.runtime.CUDARuntimeError``: ``status`` is the cudaError_t."""

    def __init__(self, status: int, name: str, detail: str = "") -> None:
        self.status = status
        super().__init__(f"{name}{': ' + detail if detail else ''}")


class CUDADriverError(RuntimeError):
    """As ``cupy_backends.cuda.api.driver.CUDADriverError``: ``status`` is the CUresult."""

    def __init__(self, status: int, name: str, detail: str = "") -> None:
        self.status = status
        super().__init__(f"{name}{': ' + detail if detail else ''}")


class OutOfMemoryError(MemoryError):
    """As ``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


# cudaError_t / CUresult values the simulator raises
ERR_INVALID_VALUE = 1
ERR_INVALID_DEVICE = 101
ERR_CAPTURE_UNSUPPORTED = 900
ERR_CAPTURE_INVALIDATED = 901
ERR_CAPTURE_UNMATCHED = 903
CU_INVALID_VALUE = 1
CU_NOT_FOUND = 500


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
        raise CUDARuntimeError(ERR_INVALID_DEVICE, "cudaErrorInvalidDevice", "invalid device ordinal")
    return i


# ------------------------------------------------------------------------------ memory


class Memory:
    """One device allocation: ``buf`` is its host memory, ``ptr`` its address."""

    __slots__ = ("buf", "size", "device_id", "__weakref__")

    def __init__(self, buf: np.ndarray, device_id: int) -> None:
        self.buf = buf
        self.size = buf.nbytes
        self.device_id = device_id

    @property
    def ptr(self) -> int:
        return address(self.buf)


class MemoryPointer:
    """As ``cupy.cuda.MemoryPointer``: an allocation and an offset into it."""

    __slots__ = ("mem", "ptr", "device_id")

    def __init__(self, mem: Memory | None, offset: int = 0, ptr: int | None = None) -> None:
        self.mem = mem
        self.device_id = mem.device_id if mem is not None else state.device
        self.ptr = ptr if ptr is not None else (mem.ptr + offset if mem is not None else 0)

    @property
    def device(self) -> Any:
        from .cupy.cuda import Device  # noqa: PLC0415

        return Device(self.device_id)

    def __int__(self) -> int:
        return self.ptr

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.mem, ptr=self.ptr + int(offset))


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


def raw_alloc(nbytes: int, device_id: int) -> Memory:
    """A fresh allocation of ``nbytes`` (checked against the device's memory)."""
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError("negative allocation size")
    pool.reserve(max(nbytes, 0))
    try:
        buf = np.empty(max(nbytes, 1), np.uint8)
    except MemoryError:
        pool.release(nbytes)
        raise OutOfMemoryError(nbytes, pool.used, pool.limit) from None
    weakref.finalize(buf, _release, nbytes)
    count("allocations")
    return Memory(buf, device_id)


def default_malloc(nbytes: int) -> MemoryPointer:
    return MemoryPointer(raw_alloc(nbytes, state.device))


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
        raise CUDARuntimeError(
            ERR_CAPTURE_UNSUPPORTED,
            "cudaErrorStreamCaptureUnsupported",
            f"operation not permitted when stream is capturing ({what})",
        )


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
