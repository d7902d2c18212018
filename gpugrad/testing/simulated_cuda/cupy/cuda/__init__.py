"""Simulated ``cupy.cuda``: devices, streams, events, the allocator and graph capture."""

from __future__ import annotations

from ... import _device as _D
from . import compiler, driver, graph, memory, nccl, runtime  # noqa: F401
from .memory import Memory, MemoryPointer, get_allocator, set_allocator  # noqa: F401
from .stream import Event, ExternalStream, Stream, get_current_stream, get_elapsed_time  # noqa: F401


def is_available() -> bool:
    return True


class Device:
    """``with Device(i):`` makes device ``i`` current; ``Device()`` is the current one."""

    def __init__(self, device=None) -> None:
        if device is None:
            device = _D.state.device
        self.id = _D.check_device(int(device))
        self._saved: list[int] = []

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"

    def __int__(self) -> int:
        return self.id

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("cuda-device", self.id))

    def __enter__(self) -> Device:
        self._saved.append(_D.state.device)
        _D.state.device = self.id
        return self

    def __exit__(self, *exc) -> None:
        _D.state.device = self._saved.pop()

    def use(self) -> None:
        _D.state.device = self.id

    def synchronize(self) -> None:
        _D.synchronize("cudaDeviceSynchronize")

    @property
    def compute_capability(self) -> str:
        return f"{_D.COMPUTE_CAPABILITY[0]}{_D.COMPUTE_CAPABILITY[1]}"

    @property
    def attributes(self) -> dict[str, int]:
        return {name[len("cudaDevAttr") :]: value for name, value in runtime._attributes().items()}

    @property
    def mem_info(self) -> tuple[int, int]:
        return runtime.memGetInfo()

    @property
    def pci_bus_id(self) -> str:
        return f"0000:{self.id + 0x18:02x}:00.0"


def get_device_id() -> int:
    return _D.state.device
