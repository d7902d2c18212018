"""Simulated ``cupy.cuda.runtime``: device count, attributes and properties of an H100 SXM."""

from __future__ import annotations

from ... import _device as _D
from ..._device import CUDARuntimeError  # noqa: F401

is_hip = False

cudaDevAttrMaxThreadsPerBlock = 1
cudaDevAttrMaxBlockDimX = 2
cudaDevAttrMaxBlockDimY = 3
cudaDevAttrMaxBlockDimZ = 4
cudaDevAttrMaxGridDimX = 5
cudaDevAttrMaxGridDimY = 6
cudaDevAttrMaxGridDimZ = 7
cudaDevAttrMaxSharedMemoryPerBlock = 8
cudaDevAttrTotalConstantMemory = 9
cudaDevAttrWarpSize = 10
cudaDevAttrMaxRegistersPerBlock = 12
cudaDevAttrClockRate = 13
cudaDevAttrMultiProcessorCount = 16
cudaDevAttrMemoryClockRate = 36
cudaDevAttrGlobalMemoryBusWidth = 37
cudaDevAttrL2CacheSize = 38
cudaDevAttrMaxThreadsPerMultiProcessor = 39
cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81
cudaDevAttrMaxRegistersPerMultiprocessor = 82
cudaDevAttrMaxSharedMemoryPerBlockOptin = 97

_VALUES = {
    "cudaDevAttrMaxThreadsPerBlock": _D.MAX_THREADS_PER_BLOCK,
    "cudaDevAttrMaxBlockDimX": _D.MAX_BLOCK_DIM[0],
    "cudaDevAttrMaxBlockDimY": _D.MAX_BLOCK_DIM[1],
    "cudaDevAttrMaxBlockDimZ": _D.MAX_BLOCK_DIM[2],
    "cudaDevAttrMaxGridDimX": _D.MAX_GRID_DIM[0],
    "cudaDevAttrMaxGridDimY": _D.MAX_GRID_DIM[1],
    "cudaDevAttrMaxGridDimZ": _D.MAX_GRID_DIM[2],
    "cudaDevAttrMaxSharedMemoryPerBlock": _D.SMEM_PER_BLOCK,
    "cudaDevAttrTotalConstantMemory": 65536,
    "cudaDevAttrWarpSize": _D.WARP_SIZE,
    "cudaDevAttrMaxRegistersPerBlock": 65536,
    "cudaDevAttrClockRate": 1980000,
    "cudaDevAttrMultiProcessorCount": _D.SM_COUNT,
    "cudaDevAttrMemoryClockRate": 2619000,
    "cudaDevAttrGlobalMemoryBusWidth": 5120,
    "cudaDevAttrL2CacheSize": _D.L2_BYTES,
    "cudaDevAttrMaxThreadsPerMultiProcessor": 2048,
    "cudaDevAttrMaxSharedMemoryPerMultiprocessor": _D.SMEM_PER_SM,
    "cudaDevAttrMaxRegistersPerMultiprocessor": 65536,
    "cudaDevAttrMaxSharedMemoryPerBlockOptin": _D.SMEM_PER_BLOCK_OPTIN,
}


def _attributes() -> dict[str, int]:
    return dict(_VALUES)


_BY_CODE = {globals()[name]: value for name, value in _VALUES.items()}


def getDeviceCount() -> int:  # noqa: N802 - CuPy's names
    return _D.DEVICE_COUNT


def getDevice() -> int:  # noqa: N802
    return _D.state.device


def setDevice(device: int) -> None:  # noqa: N802
    _D.state.device = _D.check_device(device)


def deviceGetAttribute(attrib: int, device: int) -> int:  # noqa: N802
    _D.check_device(device)
    if attrib not in _BY_CODE:
        raise CUDARuntimeError(_D.ERR_INVALID_VALUE)
    return _BY_CODE[attrib]


def getDeviceProperties(device: int) -> dict:  # noqa: N802
    _D.check_device(device)
    return {
        "name": _D.DEVICE_NAME.encode(),
        "totalGlobalMem": _D.TOTAL_MEMORY,
        "sharedMemPerBlock": _D.SMEM_PER_BLOCK,
        "sharedMemPerBlockOptin": _D.SMEM_PER_BLOCK_OPTIN,
        "sharedMemPerMultiprocessor": _D.SMEM_PER_SM,
        "regsPerBlock": 65536,
        "warpSize": _D.WARP_SIZE,
        "maxThreadsPerBlock": _D.MAX_THREADS_PER_BLOCK,
        "maxThreadsDim": _D.MAX_BLOCK_DIM,
        "maxGridSize": _D.MAX_GRID_DIM,
        "clockRate": 1980000,
        "memoryClockRate": 2619000,
        "memoryBusWidth": 5120,
        "totalConstMem": 65536,
        "major": _D.COMPUTE_CAPABILITY[0],
        "minor": _D.COMPUTE_CAPABILITY[1],
        "multiProcessorCount": _D.SM_COUNT,
        "l2CacheSize": _D.L2_BYTES,
        "maxThreadsPerMultiProcessor": 2048,
        "pciBusID": 0x18 + device,
        "pciDeviceID": 0,
        "pciDomainID": 0,
        "integrated": 0,
        "canMapHostMemory": 1,
        "concurrentKernels": 1,
        "ECCEnabled": 1,
    }


def runtimeGetVersion() -> int:  # noqa: N802
    return 13000


def driverGetVersion() -> int:  # noqa: N802
    return 13000


def deviceSynchronize() -> None:  # noqa: N802
    _D.synchronize("cudaDeviceSynchronize")


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    return _D.TOTAL_MEMORY - _D.pool.used, _D.TOTAL_MEMORY
